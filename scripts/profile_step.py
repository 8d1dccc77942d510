"""Where the time of a world RL step and of an evaluation pass goes, measured on the real CLI (`fit`).

Runs `python -m wavalign fit` in this process with the given configs (by default the ablation's generated RL base
and a row overlay, so the figures are at the ablation's settings) and wraps the functions that do the work with
timers: rollout decoding, reply decoding, each judge (rule, ASR, style), speech decoding (codec), the reference
forward, the training forward, the backward, the optimizer, logging and the evaluation. Times are exclusive (a
phase nested in another is not counted twice: the speech decoded inside a judge is "speech decoding"), and
"other" is the rest of the wall time (Lightning's loop, batching, callbacks).

Why timers on named functions rather than cProfile or torch.profiler: the table must read in the paper's phases,
and cProfile's per-call overhead would inflate the Python-heavy phases (judging, decoding) it is meant to measure.

    python -m wavalign.ablate --rows wavalign --seeds 0    # once: the world, the warm start and rl.yaml
    python scripts/profile_step.py --steps 20 --eval       # the table (docs/performance.md keeps its output)
"""

from __future__ import annotations

import argparse
import functools
import importlib
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

# (module, attribute path, phase): every function the table names; a missing one is skipped with a note
TIMED = [
    ("wavalign.policy.interleaved", "InterleavedPolicy.rollout", "rollout decoding"),
    ("wavalign.policy.interleaved", "InterleavedPolicy.decode", "reply tokens -> text, codes"),
    ("wavalign.judges.rules", "AnswerJudge.score", "judge: rule"),
    ("wavalign.judges.asr", "AsrConsistencyJudge.score", "judge: ASR consistency"),
    ("wavalign.audio.asr", "TaskASR.transcribe", "ASR (transcribe)"),
    ("wavalign.judges.style", "StyleJudge.score", "judge: style"),
    ("wavalign.audio.world_codec", "WorldCodec.decode", "speech decoding (codec)"),
    ("wavalign.module", "WavAlignModule.reference_logprobs", "reference forward"),
    ("wavalign.module", "step_logprobs", "training forward (log-probs)"),
    ("wavalign.module", "WavAlignModule.training_step", "training step: rest (prompts, gate, losses)"),
    ("wavalign.module", "WavAlignModule.backward", "backward"),
    ("lightning.pytorch.core.optimizer", "LightningOptimizer.step", "optimizer step (clip, AdamW, hooks)"),
    ("wavalign.module", "WavAlignModule.log_dict", "logging (log_dict)"),
    ("lightning.pytorch.loggers.tensorboard", "TensorBoardLogger.log_metrics", "logging (TensorBoard write)"),
    ("wavalign.callbacks.geometry", "GradientGeometryCallback.on_train_batch_end", "gradient geometry callback"),
]
EVAL = ("wavalign.callbacks.benchmark", "BenchmarkCallback.evaluate", "evaluation: rest (prompts, metrics)")


class Clock:
    """Exclusive seconds per (context, phase): a stack subtracts a nested phase's time from its parent's."""

    def __init__(self) -> None:
        self.total: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.stack: list[list] = []  # [phase, start, child seconds]
        self.context = "setup"

    def wrap(self, fn, phase: str):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.stack.append([phase, time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                name, start, children = self.stack.pop()
                spent = time.perf_counter() - start
                key = (self.context, name)
                self.total[key] += spent - children
                self.calls[key] += 1
                if self.stack:
                    self.stack[-1][2] += spent

        return timed


def install(clock: Clock) -> None:
    for module_name, path, phase in [*TIMED, EVAL]:
        module = importlib.import_module(module_name)
        owner_name, _, attr = path.rpartition(".")
        owner = getattr(module, owner_name) if owner_name else module
        original = getattr(owner, attr, None)
        if original is None:
            print(f"(not timed: {module_name}.{path} does not exist here)")
            continue
        timed = clock.wrap(original, phase)
        if path == EVAL[1]:
            timed = _in_context(clock, "eval", timed)
        setattr(owner, attr, timed)


def _in_context(clock: Clock, context: str, fn):
    @functools.wraps(fn)
    def inner(*args, **kwargs):
        before, clock.context = clock.context, context
        try:
            return fn(*args, **kwargs)
        finally:
            clock.context = before

    return inner


class StepWindows:
    """Sets the clock's context to each training step after the warm-up and sums their wall time (installed as the
    module's own batch hooks: the Trainer's callbacks come from the configs)."""

    def __init__(self, clock: Clock, warmup: int) -> None:
        self.clock, self.warmup = clock, warmup
        self.wall, self.steps, self.start = 0.0, 0, 0.0

    def install(self, module_class: type) -> None:
        start_hook, end_hook = module_class.on_train_batch_start, module_class.on_train_batch_end
        windows = self

        def on_train_batch_start(module, batch, batch_idx):
            windows.clock.context = "step" if batch_idx >= windows.warmup else "warmup"
            windows.start = time.perf_counter()
            return start_hook(module, batch, batch_idx)

        def on_train_batch_end(module, outputs, batch, batch_idx):
            end_hook(module, outputs, batch, batch_idx)
            if windows.clock.context == "step":
                windows.wall += time.perf_counter() - windows.start
                windows.steps += 1
            windows.clock.context = "between"

        module_class.on_train_batch_start = on_train_batch_start
        module_class.on_train_batch_end = on_train_batch_end


def table(clock: Clock, context: str, wall: float, per: int, unit: str) -> str:
    rows = sorted(((k[1], v) for k, v in clock.total.items() if k[0] == context), key=lambda kv: -kv[1])
    lines = [f"| phase | s per {unit} | share | calls per {unit} |", "|---|---|---|---|"]
    for phase, seconds in rows:
        lines.append(
            f"| {phase} | {seconds / per:.4f} | {seconds / wall:.1%} | {clock.calls[(context, phase)] / per:.1f} |"
        )
    other = wall - sum(v for _, v in rows)
    if other > 1e-9:
        lines.append(f"| other (loop, batching, callbacks) | {other / per:.4f} | {other / wall:.1%} | |")
    lines.append(f"| **total** | **{wall / per:.4f}** | 100% | |")
    return "\n".join(lines)


def profiled_fit(
    configs: list[str], steps: int, warmup: int, evaluate: bool, overrides: list[str], save_dir: str
) -> tuple[Clock, StepWindows]:
    """`fit` in this process with the timers installed: `warmup` + `steps` RL steps, one evaluation pass before
    the first when `evaluate`, no validation."""
    clock = Clock()
    install(clock)
    windows = StepWindows(clock, warmup)
    from wavalign.callbacks.benchmark import BenchmarkCallback
    from wavalign.cli import main as cli_main

    original_setup = BenchmarkCallback.setup

    def setup(self, trainer, pl_module, stage):  # the evaluation pass runs once, before step 1, when asked for
        self.at_start = evaluate
        return original_setup(self, trainer, pl_module, stage)

    BenchmarkCallback.setup = setup
    from wavalign.module import WavAlignModule

    windows.install(WavAlignModule)
    flags = [f"--trainer.max_steps={steps + warmup}", "--trainer.limit_val_batches=0"]
    flags += [f"--trainer.logger.init_args.save_dir={save_dir}", "--trainer.logger.init_args.version=run"]
    cli_main(["fit", *[x for c in configs for x in ("--config", c)], *flags, *overrides])
    return clock, windows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", help="fit configs (default: the ablation's rl.yaml + wavalign row)")
    ap.add_argument("--steps", type=int, default=20, help="timed RL steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed first steps (compilation, caches)")
    ap.add_argument("--eval", action="store_true", help="also time one evaluation pass (the BenchmarkCallback's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the ablation's default: 1)")
    ap.add_argument("overrides", nargs="*", help="extra fit flags, e.g. --trainer.max_steps=...")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    configs = args.config or [".cache/ablate/rl.yaml", "configs/ablations/wavalign.yaml"]
    start = time.perf_counter()
    clock, windows = profiled_fit(configs, args.steps, args.warmup, args.eval, args.overrides, "/tmp/wavalign-profile")
    total = time.perf_counter() - start
    print(f"\nconfigs: {' + '.join(configs)}; {torch.get_num_threads()} thread(s); whole fit {total:.1f} s")
    print(f"\nOne RL step (the mean over {windows.steps} steps after {args.warmup} warm-up)\n")
    print(table(clock, "step", windows.wall, windows.steps, "step"))
    if args.eval:
        wall = sum(v for k, v in clock.total.items() if k[0] == "eval")
        print("\nOne evaluation pass\n")
        print(table(clock, "eval", wall, 1, "pass"))
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
