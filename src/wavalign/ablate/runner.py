"""Run an ablation's warm start, then its (row, seed) runs `jobs` at a time (seed-major: every row gets seed 0
before any row gets seed 1, so a stopped ablation leaves whole seeds; within a seed the longest rows first), then
the judge figures beside the last runs; resumable.

Each run is one child process, forked from a server that has imported the training stack once (ablate/launcher.py),
that runs exactly what `python -m wavalign fit ARGS` runs, with the generated RL base config, the row's overlay and
the seed (so its command line can be rerun by hand), then writes the run's result.json last, atomically; its output
goes to <run dir>.log. `python -m wavalign.ablate.runner RUN_DIR META_JSON ARGS...` does the same by hand, with the
fit in a fresh interpreter. A run is finished when its result.json exists: finished runs are never rerun, and an
unfinished run's directory is cleared before it starts again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from wavalign.ablate import launcher
from wavalign.ablate.plan import AblationSettings, Row
from wavalign.ablate.row_sets import write_matched_overlay

WARM_START = "warm_start"
EVAL_LAST = (
    "eval/world_val/iq",
    "eval/world_val/iq_se",
    "eval/world_heard/iq",
    "eval/world_heard/iq_se",
    "eval/eq",
    "eval/wer",
)
TRAIN_MEAN = (
    "gate/lambda",
    "reward/mean",
    "rollout/frac_zero_std",
    "reward/std",
    "grad/norm_text",
    "grad/norm_speech",
    "grad/cos_text_speech",
    "rollout/len_text",
    "rollout/len_speech",
)


def read_metrics(run_dir: str | Path) -> dict[str, float]:
    """The run's final evaluation (EVAL_LAST: last logged value) and its training means (TRAIN_MEAN) from its
    TensorBoard events."""
    from wavalign.callbacks.run_summary import read_event_series

    series, _ = read_event_series(run_dir)
    out: dict[str, float] = {}
    for tag in EVAL_LAST:
        if series.get(tag):
            out[tag] = float(max(series[tag])[1])  # the latest step's value
    for tag in TRAIN_MEAN:
        if series.get(tag):
            values = [v for _, v in series[tag]]
            out[f"{tag}:mean"] = sum(values) / len(values)
            if tag == "gate/lambda":  # how much the gate moves over the logged steps (0: a fixed gate in effect)
                mean = out[f"{tag}:mean"]
                out[f"{tag}:sd"] = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    return out


def command(args: list[str]) -> str:
    return "python -m wavalign " + " ".join(args)


def _peak_rss_mb() -> float:
    """The largest resident set of this process and its finished children, in MB (Linux reports KiB)."""
    import resource

    return max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024


def _cpu_seconds() -> float:
    import resource

    return sum(
        u.ru_utime + u.ru_stime
        for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def fit_subprocess(args: list[str]) -> int:
    """`python -m wavalign ARGS` as a child of this process; its exit status. The Trainer CLI sits above this package,
    which does not import it."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "wavalign", *args])
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # `kill` of this run stops its fit too
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_and_record(
    args: list[str], run_dir: Path, meta: dict[str, Any], fit: Callable[[list[str]], int] = fit_subprocess
) -> dict[str, Any]:
    """Run `wavalign ARGS` with `fit`, then write result.json from the run's summary.json (RunSummary: the step it
    reached) and events."""
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted earlier attempt
    t0, c0 = time.perf_counter(), _cpu_seconds()
    code = fit(args)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    if code != 0:
        raise SystemExit(code)
    summary_file = run_dir / "summary.json"
    done = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    steps, max_steps = done.get("global_step", 0), done.get("max_steps")
    if max_steps is None or steps < max_steps:  # stopped early (a signal): not a finished run
        raise SystemExit(f"ablation: the run stopped at step {steps} of {max_steps} (no complete {summary_file})")
    # cpu_s: CPU time of the run and its finished children (judge pools); with one thread per run about the run's wall
    # time on an idle core, whatever else the machine was doing (the wall time of a shared machine is not)
    result = {
        **meta,
        "steps": int(steps),
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": _peak_rss_mb(),  # the run's own (a run forked from the launcher is not a child of the command)
        "command": command(args),
        "metrics": read_metrics(run_dir),
    }
    tmp = run_dir / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    tmp.replace(run_dir / "result.json")
    return result


class RunFailed(RuntimeError):
    pass


def _spawn(args: list[str], where: Path, meta: dict[str, Any], threads: int) -> launcher.RunProcess:
    """Start one run as a child process forked from the preloaded server; its stdout and stderr go to <where>.log."""
    return launcher.start(run_and_record, args, where, meta, threads)


def _collect_child(proc: launcher.RunProcess, where: Path) -> dict[str, Any]:
    done = finished(where)
    if proc.returncode != 0 or done is None:
        raise RunFailed(f"ablation: the run in {where} failed (exit {proc.returncode}); see {where}.log")
    return done


def finished(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_dir(settings: AblationSettings, name: str, seed: int) -> Path:
    return Path(settings.work) / "runs" / name / f"seed{seed}"


def warm_start(settings: AblationSettings, sft_yaml: str, say: Callable[[str], None], jobs: int = 1) -> dict[str, Any]:
    """The one warm start every row starts from (its final evaluation is the table's first row). It runs alone,
    so it gets the threads of all `jobs` runs (one thread would leave the other cores idle for its minutes)."""
    where = run_dir(settings, WARM_START, 0)
    done = finished(where)
    if done is not None and Path(settings.warm_start).is_file():
        say(f"[warm start] cached: {where}/result.json")
        return done
    Path(settings.warm_start).unlink(missing_ok=True)
    say(f"[warm start] SFT {settings.sft_steps} steps on the demonstrations ...")
    proc = _spawn(["fit", "--config", sft_yaml], where, {"row": WARM_START, "seed": 0}, settings.threads * jobs)
    proc.wait()
    result = _collect_child(proc, where)
    say(f"[warm start] done in {result['wall_s']:.0f} s; {summary(result['metrics'])}")
    return result


def analysis_job(settings: AblationSettings, rl_yaml: str, checkpoint_loader: Any) -> None:
    """warm_analysis as a forked job (run_all's tail): it writes analysis.json, which the report then reads. The
    fork server never ran the entry point, so the job gets the caller's checkpoint loader."""
    from wavalign.world import loader

    if checkpoint_loader is not None:
        loader.provide(checkpoint_loader)
    warm_analysis(settings, rl_yaml, lambda line: print(line, flush=True))


def start_analysis(settings: AblationSettings, rl_yaml: str) -> launcher.RunProcess:
    """Fork analysis_job with one thread (the other core still runs the last runs); output to analysis.log."""
    from wavalign.world import loader

    log = run_dir(settings, WARM_START, 0).parent / "analysis.log"
    return launcher.call(analysis_job, (settings, rl_yaml, loader.provided()), log, settings.threads)


def warm_analysis(settings: AblationSettings, rl_yaml: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The judge figures (ablate/analysis.py) on the warm start's samples; cached in its run directory."""
    from wavalign.ablate.analysis import measure_checkpoint

    path = run_dir(settings, WARM_START, 0) / "analysis.json"
    if path.is_file():
        say(f"[analysis] cached: {path}")
        return json.loads(path.read_text())
    say(f"[analysis] judge variance and rank consistency on {settings.analysis_prompts} validation prompts ...")
    t0 = time.perf_counter()
    result = measure_checkpoint(rl_yaml, settings.warm_start, settings.world_dir, settings.analysis_prompts, path)
    say(f"[analysis] done in {time.perf_counter() - t0:.0f} s")
    return result


def summary(m: dict[str, float]) -> str:
    parts = [f"IQ val {m['eval/world_val/iq']:.1f}" if "eval/world_val/iq" in m else "IQ val -"]
    if "eval/world_heard/iq" in m:
        parts.append(f"heard {m['eval/world_heard/iq']:.1f}")
    parts += [
        f"EQ {m['eval/eq']:.2f}" if "eval/eq" in m else "EQ -",
        f"WER {m['eval/wer']:.3f}" if "eval/wer" in m else "WER -",
    ]
    return ", ".join(parts)


def job_order(settings: AblationSettings, rows: list[Row]) -> list[tuple[Row, int]]:
    """Seed-major: every row's seed 0, then every row's seed 1, ... (a stopped ablation leaves whole seeds)."""
    return [(row, seed) for seed in settings.seeds for row in rows]


def run_all(
    settings: AblationSettings,
    rl_yaml: str,
    rows: list[Row],
    say: Callable[[str], None],
    jobs: int = 1,
    tail: Callable[[], launcher.RunProcess] | None = None,
) -> tuple[list[dict[str, Any]], launcher.RunProcess | None]:
    """Every (row, seed) run, seed-major, `jobs` child processes at a time; a progress line per run. Results come
    back in (row, seed) order whatever order the runs finish in. `tail` starts one more job (the judge figures) when
    the last run has started and a slot is free, on the core the last runs leave idle; it is returned, maybe still
    running (None when nothing ran, e.g. every run was cached)."""
    if jobs < 1:
        raise ValueError(f"ablation: jobs must be at least 1, got {jobs}")
    order = job_order(settings, rows)
    n = len(order)
    done: dict[tuple[str, int], dict[str, Any]] = {}
    queue = []
    for i, (row, seed) in enumerate(order, 1):
        where = run_dir(settings, row.name, seed)
        cached = finished(where)
        if cached is not None:
            say(f"[{i}/{n}] {row.name} seed {seed}: cached ({cached['wall_s']:.0f} s); {summary(cached['metrics'])}")
            done[(row.name, seed)] = cached
        else:
            queue.append((i, row, seed, where))
    running: list[tuple[int, Row, int, Path, launcher.RunProcess]] = []
    started: list[launcher.RunProcess] = []
    try:
        _drain(queue, running, done, settings, rl_yaml, jobs, n, say, tail, started)
    except BaseException:  # interrupted or failed: nothing outlives the command (a run without result.json reruns)
        for proc in [job[4] for job in running] + started:
            proc.terminate()
        raise
    return [done[(row.name, seed)] for row in rows for seed in settings.seeds], (started[0] if started else None)


def longest_first(ready: list, done: dict[tuple[str, int], dict[str, Any]]) -> Any:
    """The next run: of the earliest seed among those ready, the row whose finished runs took longest on average
    (a row with none yet counts as longest). Starting a seed's long rows first leaves short ones for the end, so the
    last runs on the cores end closer together. Ties keep the queue's order."""
    first_seed = min(q[2] for q in ready)

    def expected(q: Any) -> float:
        walls = [r["wall_s"] for (name, _), r in done.items() if name == q[1].name]
        return sum(walls) / len(walls) if walls else float("inf")

    candidates = [q for q in ready if q[2] == first_seed]
    return max(candidates, key=expected)  # max keeps the first of equal keys


def _drain(
    queue: list,
    running: list,
    done: dict,
    settings: AblationSettings,
    rl_yaml: str,
    jobs: int,
    n: int,
    say: Callable[[str], None],
    tail: Callable[[], launcher.RunProcess] | None,
    started: list[launcher.RunProcess],
) -> None:
    """Start queued runs while fewer than `jobs` run (longest_first); collect each as it ends. A row that needs
    another row's first-seed run (`Row.after`) waits for it; the others go ahead of it. Once the queue is empty, a
    free slot starts `tail` (appended to `started`)."""
    first = settings.seeds[0]
    while queue or running:
        while len(running) < jobs:
            ready = [q for q in queue if q[1].after is None or (q[1].after, first) in done]
            if not ready:
                if queue and not running:
                    raise RunFailed(f"ablation: rows {[q[1].name for q in queue]} wait for runs that never finished")
                break
            pick = longest_first(ready, done)
            queue.remove(pick)
            i, row, seed, where = pick
            overlay = row.overlay
            if row.after is not None:
                lam = done[(row.after, first)]["metrics"]["gate/lambda:mean"]
                overlay = write_matched_overlay(settings.work, lam, first)
            args = [
                "fit",
                "--config",
                rl_yaml,
                "--config",
                overlay,
                f"--seed_everything={seed}",
                *([f"--data.init_args.seed={seed}"] if settings.seed_sets_data_order else []),
                f"--trainer.logger.init_args.name={row.name}",
                f"--trainer.logger.init_args.version=seed{seed}",
            ]
            meta = {"row": row.name, "seed": seed, "gate": row.gate, "po_tokens": row.po_tokens}
            say(f"[{i}/{n}] {row.name} seed {seed}: running {settings.steps} steps ...")
            running.append((i, row, seed, where, _spawn(args, where, meta, settings.threads)))
        time.sleep(0.5)
        for job in [j for j in running if j[4].poll() is not None]:
            running.remove(job)
            i, row, seed, where, proc = job
            result = _collect_child(proc, where)
            say(f"[{i}/{n}] {row.name} seed {seed}: done in {result['wall_s']:.0f} s; {summary(result['metrics'])}")
            done[(row.name, seed)] = result
        if tail is not None and not started and not queue and len(running) < jobs:
            started.append(tail())


def collect(settings: AblationSettings, rows: list[Row]) -> list[dict[str, Any]]:
    """Every finished run of these rows in the work directory, whatever its seed (for --report-only)."""
    out = []
    for row in rows:
        seeds = sorted(
            int(p.parent.name[4:]) for p in (Path(settings.work) / "runs" / row.name).glob("seed*/result.json")
        )
        out += [r for r in (finished(run_dir(settings, row.name, s)) for s in seeds) if r is not None]
    return out


if __name__ == "__main__":  # one run by hand, the fit in a fresh interpreter: RUN_DIR META_JSON then `wavalign` args
    run_and_record(sys.argv[3:], Path(sys.argv[1]), json.loads(sys.argv[2]))
