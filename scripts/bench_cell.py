"""Wall time and peak RSS of one ablation cell under two commits, one after the other.

Issue 27 asks for a cell (200 RL steps plus its evaluation, at the ablation's settings) measured side by side with
an older commit on the same machine. Each commit's `src/` is extracted with `git archive` into --work and run as
`python -m wavalign fit` with PYTHONPATH pointing at it, from this repository's root (so the generated configs'
relative paths resolve), with one torch thread as the ablation runs it. Runs alternate old, new, old, new ...

The cell's config is the ablation's generated RL base (`python -m wavalign.ablate` writes it) with two edits that
let an older commit read it, then a row overlay as a second --config, as the ablation's runner passes it. The edits: the reward is the binary `AnswerJudge` (the graded judge is
newer; both are a few string rules per reply) and the callback's `save_items` is dropped. The same seed, world and
warm start go to both, so the runs train on the same rollouts wherever the math is unchanged: the script prints
each run's final metrics to show it.

    python scripts/bench_cell.py --old dea7f51 --new HEAD --config .cache/ablate/rl.yaml

A setting the new commit's own configs carry and the base predates goes to the new runs only with --new-flag, e.g.
`--new-flag=--model.policy.init_args.decoder=fused` (configs/tiny.yaml's decoder since issue 27).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def extract(rev: str, into: Path, paths: tuple[str, ...] = ("src", "configs")) -> Path:
    """The commit's `paths` (() for the whole tree) as plain files under `into`/<sha>."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    where = into / sha.strip()[:10]
    if not (where / "src").is_dir():
        where.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", rev, *paths], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def cell_config(config: Path, steps: int, work: Path) -> Path:
    """The RL base, readable by older commits (binary judge, no save_items), logging under work."""
    base = yaml.safe_load(config.read_text())
    base["model"]["judge"] = {"class_path": "wavalign.judges.rules.AnswerJudge"}
    base["trainer"]["max_steps"] = steps
    base["model"]["scheduler"]["init_args"]["total_steps"] = steps
    base["trainer"]["val_check_interval"] = steps
    base["trainer"]["logger"]["init_args"]["save_dir"] = str(work / "runs")
    for callback in base["trainer"]["callbacks"]:
        callback.get("init_args", {}).pop("save_items", None)
    out = work / "cell.yaml"
    out.write_text(yaml.safe_dump(base, sort_keys=False))
    return out


def run(tree: Path, args: list[str], name: str, log: Path) -> dict:
    """One `wavalign fit` child under /usr/bin/time -v: wall seconds, peak RSS (MB) and the last metrics line."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    probe = [sys.executable, "-c", "import wavalign; print(wavalign.__file__)"]
    where = subprocess.run(probe, env=env, check=True, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(tree)):
        raise SystemExit(f"bench_cell: {tree} is not the wavalign that runs ({where})")
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "wavalign",
        "fit",
        *args,
        f"--trainer.logger.init_args.version={name}",
    ]
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"bench_cell: {name} failed (exit {proc.returncode}); see {log}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    return {"name": name, "wall_s": round(wall, 1), "peak_rss_mb": round(rss), "metrics": final_metrics(text)}


def final_metrics(text: str) -> dict:
    """IQ, EQ and WER as the run summary prints them at the end of fit ('  IQ   18.42 ± 1.72')."""
    found = re.findall(r"^\s+(IQ|EQ|WER)\s+(-?\d+\.\d+)", text, flags=re.M)
    return {k: float(v) for k, v in found}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="dea7f51", help="the commit before issue 27's changes")
    ap.add_argument("--new", default="HEAD")
    ap.add_argument("--config", default=".cache/ablate/rl.yaml", help="the ablation's generated RL base")
    ap.add_argument("--row", default="configs/ablations/wavalign.yaml")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="old/new pairs, alternated")
    ap.add_argument("--work", default=None, help="where the trees, configs and logs go (default: a temp folder)")
    ap.add_argument("--new-flag", action="append", default=[], help="a fit flag for the new commit's runs only")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_cell_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    trees = {"old": extract(args.old, work), "new": extract(args.new, work)}
    # the row is a second --config, as the ablation's runner passes it (LightningCLI merges it key by key)
    fit = ["--config", str(cell_config(ROOT / args.config, args.steps, work)), "--config", str(ROOT / args.row)]
    fit.append(f"--seed_everything={args.seed}")
    results: list[dict] = []
    for rep in range(args.repeats):
        for label in ("old", "new"):
            name = f"{label}{rep}"
            flags = fit + (args.new_flag if label == "new" else [])
            results.append({"rev": label, **run(trees[label], flags, name, work / f"{name}.log")})
            print(json.dumps(results[-1]), flush=True)
    walls = {label: [r["wall_s"] for r in results if r["rev"] == label] for label in trees}
    pairs = [n / o for o, n in zip(walls["old"], walls["new"])]
    print(f"old {args.old}: wall {walls['old']} s; new {args.new}: wall {walls['new']} s")
    print(f"new / old per pair: {[round(p, 3) for p in pairs]}, median {statistics.median(pairs):.3f}")
    (work / "bench_cell.json").write_text(json.dumps({"args": vars(args), "runs": results, "ratios": pairs}, indent=2))
    print(f"record: {work / 'bench_cell.json'}")


if __name__ == "__main__":
    main()
