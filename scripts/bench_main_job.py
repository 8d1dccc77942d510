"""Wall time and peak RSS of the main job (`python -m wavalign fit --config configs/tiny.yaml`) from nothing, under
two commits, one after the other.

Issue 27 asks for the main job measured side by side with an older commit. Each commit's whole tree is extracted with
`git archive` into --work/<sha> and the main job runs there exactly as the README gives it, with PYTHONPATH at that
tree's src/, so each commit builds its own world, warm start and RL run in its own `.cache/` and `runs/`. Each run's
summary line (IQ, EQ, WER) is printed beside its time.

    python scripts/bench_main_job.py --old dea7f51 --new HEAD --work /tmp/bench_main
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_cell import extract  # the same git-archive extraction, here of the whole tree (scripts/ is on sys.path)


def run(tree: Path, log: Path) -> dict:
    """One main job in `tree`: its wall time, peak RSS (GNU time's: the largest process of the job) and summary."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", f"{log}.rss"]  # GNU time: the job's peak RSS in KB
            + [sys.executable, "-m", "wavalign", "fit", "--config", "configs/tiny.yaml"],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"the main job in {tree} failed (exit {proc.returncode}); see {log}")
    summaries = sorted((tree / "runs").glob("**/summary.json"), key=lambda p: p.stat().st_mtime)
    summary = json.loads(summaries[-1].read_text()) if summaries else {}
    peak_mb = int(Path(f"{log}.rss").read_text().split()[-1]) / 1024
    return {"tree": str(tree), "wall_s": wall, "peak_rss_mb": peak_mb, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="dea7f51", help="the commit before issue 27's changes")
    ap.add_argument("--new", default="HEAD")
    ap.add_argument("--work", required=True, help="where the trees and logs go (each tree holds its own .cache)")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    for label, rev in (("old", args.old), ("new", args.new)):
        tree = extract(rev, work, paths=())
        results[label] = {"rev": rev, **run(tree, work / f"{label}.log")}
        print(json.dumps(results[label]), flush=True)
    ratio = results["new"]["wall_s"] / results["old"]["wall_s"]
    print(
        f"main job wall: old {results['old']['wall_s']:.0f} s, new {results['new']['wall_s']:.0f} s, new / old {ratio:.3f}"
    )
    (work / "bench_main_job.json").write_text(
        json.dumps({"args": vars(args), "runs": results, "ratio": ratio}, indent=2)
    )


if __name__ == "__main__":
    main()
