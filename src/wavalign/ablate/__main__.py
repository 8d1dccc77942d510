"""`python -m wavalign.ablate [--quick] [--seeds 0 1 2] [--steps 200] [--rows ...] [--gate my.Rule ...]`

Prepares the ablation's world (wavalign.ablate.plan.DEFAULT_WORLD: an imperfect teacher and the heard split), trains
one SFT warm start, runs every row of configs/ablations/ (plus the library's other gate rules and any --gate) for
each seed from it, and writes results/ablation.md and results/ablation_tradeoff.png. Interrupt and rerun the same
command to resume: finished runs are not rerun. One thread by default (--threads), so it can share a machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wavalign.ablate.plan import AblationSettings


def main(argv: list[str] | None = None) -> int:
    from wavalign.ablate.plan import DEFAULT_WORLD, QUICK_WORLD, AblationSettings

    parser = argparse.ArgumentParser(prog="python -m wavalign.ablate", description=__doc__.splitlines()[2])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny world, 2 RL steps, 2 seeds, short replies: checks the pipeline in minutes",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="default 0-8: 9 seeds, the fewest that detect 3 IQ points at the 7-seed run's spread (docs/testbed.md)",
    )
    parser.add_argument("--steps", type=int, default=None, help="RL steps per run (default 200; quick: 2)")
    parser.add_argument("--sft-steps", type=int, default=None, help="warm-start SFT steps (default 1000; quick: 4)")
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows (file stems, e.g. wavalign sft_only)")
    parser.add_argument("--gate", action="append", default=[], help="an extra gate rule class path, one row each")
    parser.add_argument(
        "--teacher-wrong-answer",
        type=float,
        default=None,
        help=f"share of training questions taught wrong (default {DEFAULT_WORLD.teacher_wrong_answer})",
    )
    parser.add_argument(
        "--teacher-wrong-style",
        type=float,
        default=None,
        help=f"share of demonstrations in a wrong style (default {DEFAULT_WORLD.teacher_wrong_style})",
    )
    parser.add_argument("--eval-max-items", type=int, default=None, help="items per evaluation split (default all)")
    parser.add_argument(
        "--analysis-prompts",
        type=int,
        default=None,
        help="validation prompts for the judge variance / rank consistency figures (default 50)",
    )
    parser.add_argument(
        "--work",
        default=None,
        help="world, warm start and runs, resumable (default .cache/ablate; quick: .cache/ablate_quick)",
    )
    parser.add_argument("--out", default="results", help="where ablation.md and ablation_tradeoff.png go")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write the report from the runs already finished in --work (any seeds)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument(
        "--plan",
        choices=("paper", "hybrid"),
        default="paper",
        help="the paper's rows (default) or the other papers' hybrid rules, each with sft_only and wavalign",
    )
    parser.add_argument(
        "--reward",
        choices=("graded", "config"),
        default="graded",
        help="the RL reward: the world's graded 1-5 judge (default; docs/testbed.md) or the base config's own judge",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="runs at a time, one child process each (default 2: one per core of a 2-core laptop)",
    )
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(args.threads))
    import torch

    torch.set_num_threads(args.threads)

    if args.quick:
        settings = AblationSettings(
            work=args.work or ".cache/ablate_quick",
            seeds=[0, 1],
            steps=2,
            sft_steps=4,
            world=replace(QUICK_WORLD),
            iq_samples=1,
            max_new_tokens=48,
            batch_size=4,
            analysis_prompts=2,
        )
    else:
        settings = AblationSettings(work=args.work or ".cache/ablate")
    if args.seeds is not None:
        settings.seeds = args.seeds
    for field, value in (
        ("steps", args.steps),
        ("sft_steps", args.sft_steps),
        ("eval_max_items", args.eval_max_items),
        ("analysis_prompts", args.analysis_prompts),
    ):
        if value is not None:
            if value < 1:
                parser.error(f"--{field.replace('_', '-')} must be at least 1, got {value}")
            setattr(settings, field, value)
    for key, value in (
        ("teacher_wrong_answer", args.teacher_wrong_answer),
        ("teacher_wrong_style", args.teacher_wrong_style),
    ):
        if value is not None:
            setattr(settings.world, key, value)
    settings.extra_gates, settings.threads, settings.reward = args.gate, args.threads, args.reward
    settings.plan = args.plan
    if args.jobs < 1 or args.threads < 1:
        parser.error(f"--jobs and --threads must be at least 1, got {args.jobs} and {args.threads}")
    import signal

    # `kill PID` stops the runs it started too (their `finally`); the handler is ours only while we run, since tests
    # and notebooks call main() in-process (a handler left behind made later forked pool workers ignore terminate()).
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return _run(settings, args, argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(settings: AblationSettings, args: argparse.Namespace, argv: list[str] | None) -> int:
    from wavalign.ablate.plan import check_plan, discover_rows, write_configs
    from wavalign.ablate.report import summary_json, write_figure, write_report
    from wavalign.ablate.runner import (
        WARM_START,
        RunFailed,
        collect,
        finished,
        run_all,
        run_dir,
        start_analysis,
        warm_analysis,
        warm_start,
    )

    say = lambda line: print(line, flush=True)  # noqa: E731
    try:
        check_plan(settings)
        rows = discover_rows(settings, args.rows)
        sft_yaml, rl_yaml = write_configs(settings)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    say(f"ablation: {len(rows)} rows x {len(settings.seeds)} seeds, {settings.steps} RL steps each, in {settings.work}")
    if args.report_only:
        warm, results = finished(run_dir(settings, WARM_START, 0)), collect(settings, rows)
        if warm is None or not results:
            print(f"error: {settings.work} holds no finished warm start or runs to report", file=sys.stderr)
            return 2
    else:

        def tail():  # the judge figures, on the core the last runs leave free
            say(f"[analysis] started beside the last runs ({settings.analysis_prompts} validation prompts) ...")
            return start_analysis(settings, rl_yaml)

        try:
            warm = warm_start(settings, sft_yaml, say, args.jobs)
            results, job = run_all(settings, rl_yaml, rows, say, args.jobs, tail)
        except RunFailed as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        if job is not None:
            try:
                code = job.wait()
            except BaseException:  # interrupted while waiting: the job does not outlive the command
                job.terminate()
                raise
            if code != 0:  # warm_analysis below then measures here
                say(f"[analysis] the job beside the runs failed (exit {code}); measuring here")
    import torch

    torch.set_num_threads(args.threads * args.jobs)  # the runs are over: the analysis has the cores to itself
    try:
        analysis = warm_analysis(settings, rl_yaml, say)  # after the rows: the table first when time is short
    except FileNotFoundError as e:  # --report-only on runs whose warm-start checkpoint was deleted
        say(f"[analysis] skipped: {e}")
        analysis = None
    note = write_figure(results, args.out, warm)
    cli = "python -m wavalign.ablate " + " ".join(argv if argv is not None else sys.argv[1:])
    path = write_report(settings, warm, results, args.out, cli.strip(), note, analysis)
    record = Path(args.out) / "ablation_run.json"
    record.write_text(json.dumps(summary_json(settings, warm, results), indent=1, sort_keys=True) + "\n")
    say(f"ablation: wrote {path} and {record} ({note})")
    return 0


if __name__ == "__main__":  # `python -m wavalign.ablate ...` is `wavalign ablate ...` (wavalign.world.loader says why)
    from wavalign.world.loader import run_as_wavalign

    run_as_wavalign(["ablate"])
