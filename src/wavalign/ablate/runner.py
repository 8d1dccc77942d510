"""Run an ablation's warm start and its (row, seed) runs, in this process, one after another; resumable.

A run is finished when its result.json exists (written last, atomically); finished runs are never rerun, and an
unfinished run's directory is cleared before it starts again. Each run is exactly `python -m wavalign fit` with the
generated RL base config, the row's overlay and the seed, so its command line can be rerun by hand.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from wavalign.ablate.plan import AblationSettings, Row

WARM_START = "warm_start"
EVAL_LAST = ("eval/world_val/iq", "eval/world_val/iq_se", "eval/world_heard/iq", "eval/world_heard/iq_se",
             "eval/eq", "eval/wer")  # fmt: skip
TRAIN_MEAN = ("gate/lambda", "reward/mean", "rollout/frac_zero_std", "reward/std", "grad/norm_text",
              "grad/norm_speech", "grad/cos_text_speech")  # fmt: skip


def read_metrics(run_dir: str | Path) -> dict[str, float]:
    """The run's final evaluation (EVAL_LAST: last logged value) and its training means (TRAIN_MEAN) from its
    TensorBoard events."""
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(glob.glob(str(Path(run_dir) / "**" / "events.out.tfevents.*"), recursive=True)):
        ea = EventAccumulator(events, size_guidance={"scalars": 0})
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            series.setdefault(tag, []).extend((e.step, e.value) for e in ea.Scalars(tag))
    out: dict[str, float] = {}
    for tag in EVAL_LAST:
        if series.get(tag):
            out[tag] = float(max(series[tag])[1])  # the latest step's value
    for tag in TRAIN_MEAN:
        if series.get(tag):
            out[f"{tag}:mean"] = sum(v for _, v in series[tag]) / len(series[tag])
    return out


def command(args: list[str]) -> str:
    return "python -m wavalign " + " ".join(args)


def _run(args: list[str], run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    from wavalign.cli import main

    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted earlier attempt
    argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI reads `args`; keep the ablation's own flags out of sight
    try:
        t0 = time.perf_counter()
        cli = main(args)
        wall = time.perf_counter() - t0
    finally:
        sys.argv = argv
    result = {**meta, "steps": int(cli.trainer.global_step), "wall_s": wall, "command": command(args),
              "metrics": read_metrics(run_dir)}  # fmt: skip
    tmp = run_dir / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    tmp.replace(run_dir / "result.json")
    return result


def finished(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_dir(settings: AblationSettings, name: str, seed: int) -> Path:
    return Path(settings.work) / "runs" / name / f"seed{seed}"


def warm_start(settings: AblationSettings, sft_yaml: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The one warm start every row starts from (its final evaluation is the table's first row)."""
    where = run_dir(settings, WARM_START, 0)
    done = finished(where)
    if done is not None and Path(settings.warm_start).is_file():
        say(f"[warm start] cached: {where}/result.json")
        return done
    Path(settings.warm_start).unlink(missing_ok=True)
    say(f"[warm start] SFT {settings.sft_steps} steps on the demonstrations ...")
    result = _run(["fit", "--config", sft_yaml], where, {"row": WARM_START, "seed": 0})
    say(f"[warm start] done in {result['wall_s']:.0f} s; {summary(result['metrics'])}")
    return result


def summary(m: dict[str, float]) -> str:
    parts = [f"IQ val {m['eval/world_val/iq']:.1f}" if "eval/world_val/iq" in m else "IQ val -"]
    if "eval/world_heard/iq" in m:
        parts.append(f"heard {m['eval/world_heard/iq']:.1f}")
    parts += [f"EQ {m['eval/eq']:.2f}" if "eval/eq" in m else "EQ -", f"WER {m['eval/wer']:.3f}" if "eval/wer" in m else "WER -"]
    return ", ".join(parts)


def run_all(settings: AblationSettings, rl_yaml: str, rows: list[Row], say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every (row, seed) run, rows outer, seeds inner; a progress line per run."""
    jobs = [(row, seed) for row in rows for seed in settings.seeds]
    results = []
    for i, (row, seed) in enumerate(jobs, 1):
        where = run_dir(settings, row.name, seed)
        done = finished(where)
        if done is not None:
            say(f"[{i}/{len(jobs)}] {row.name} seed {seed}: cached ({done['wall_s']:.0f} s); {summary(done['metrics'])}")
            results.append(done)
            continue
        args = ["fit", "--config", rl_yaml, "--config", row.overlay, f"--seed_everything={seed}",
                f"--trainer.logger.init_args.name={row.name}", f"--trainer.logger.init_args.version=seed{seed}"]  # fmt: skip
        say(f"[{i}/{len(jobs)}] {row.name} seed {seed}: running {settings.steps} steps ...")
        result = _run(args, where, {"row": row.name, "seed": seed, "gate": row.gate, "po_tokens": row.po_tokens})
        say(f"[{i}/{len(jobs)}] {row.name} seed {seed}: done in {result['wall_s']:.0f} s; {summary(result['metrics'])}")
        results.append(result)
    return results


def collect(settings: AblationSettings, rows: list[Row]) -> list[dict[str, Any]]:
    """Every finished run of these rows in the work directory, whatever its seed (for --report-only)."""
    out = []
    for row in rows:
        seeds = sorted(int(p.parent.name[4:]) for p in (Path(settings.work) / "runs" / row.name).glob("seed*/result.json"))
        out += [r for r in (finished(run_dir(settings, row.name, s)) for s in seeds) if r is not None]
    return out
