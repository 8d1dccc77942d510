"""`python -m wavalign fit|validate|test|predict --config configs/X.yaml`: LightningCLI with the gate as a top-level key.
`wavalign --help` lists these and the package's other commands (wavalign.commands, which also runs those).

`predict` answers the prompts of `data.predict_file` and writes replies, WAVs and a listening page to the folder
of the top-level `listen:` key (wavalign.callbacks.predict_writer.ReplyWriter).

Two optional top-level keys make one command do everything in the embedded world:
- `world`: prepare (or reuse, cached) the offline spoken-dialogue data before anything is built from it;
- `warm_start_config`: when `model.init_checkpoint` does not exist yet (or is older than the world it was trained on),
  run this config first to make it.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from wavalign.callbacks.divergence import Diverged, DivergenceGuard
from wavalign.callbacks.gating import GateCallback
from wavalign.callbacks.guards import JudgeOutage, NonFiniteTraining, RunGuards
from wavalign.callbacks.predict_writer import ReplyWriter
from wavalign.callbacks.run_summary import RunSummary
from wavalign.callbacks.step_progress import StepProgressBar
from wavalign.commands import dispatch
from wavalign.data.datamodule import WavAlignDataModule
from wavalign.data.row_checker import RowChecker, provide_row_checker
from wavalign.data.row_limits import rows_problems
from wavalign.data.schema import SchemaError
from wavalign.module import WavAlignModule
from wavalign.predict.replies import check_checkpoint_fits
from wavalign.runtime.empty_run import DropEmptyRun
from wavalign.runtime.quiet import silence_known_noise
from wavalign.runtime.resume import add_interrupt_checkpoint, find_last_checkpoint
from wavalign.runtime.run_config import ConfigMismatch, RunConfigRecord, check_resume, flat_config
from wavalign.runtime.warm_start import ensure_checkpoint
from wavalign.world.loader import Loaded
from wavalign.world.loader import provide as provide_loader
from wavalign.world.settings import WorldSettings

SIGTERM_STATUS = 143  # the shell's status for a process ended by SIGTERM: preempted, not finished (Ctrl-C gives 1)


def python_name() -> str:
    """This interpreter as a user would type it: relative when it lies under the working folder (`.venv/bin/python`
    after scripts/setup.sh), else `python`."""
    try:
        return str(Path(sys.executable).relative_to(Path.cwd()))
    except ValueError:
        return "python"


class WavAlignCLI(LightningCLI):
    def __init__(self, *args, **kwargs) -> None:
        argv = kwargs.get("args")
        self._argv = [str(a) for a in (sys.argv[1:] if argv is None else argv if isinstance(argv, list) else [])]
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        # The gate is part of the method, not an optional extra: `gate.rule` in YAML picks the rule.
        parser.add_lightning_class_args(GateCallback, "gate")
        # Judge-outage and non-finite guards are on for every run; `--guards.max_failed_judge_steps N` tunes them.
        parser.add_lightning_class_args(RunGuards, "guards")
        # Diverging weights, NaN/inf sampling probabilities and loss spikes (`--divergence.max_param_abs 1e3`).
        parser.add_lightning_class_args(DivergenceGuard, "divergence")
        parser.add_lightning_class_args(ReplyWriter, "listen")  # acts in `predict` only
        # What the run achieved and where its outputs are, printed and written at the end of fit / validate / test.
        parser.add_lightning_class_args(RunSummary, "summary")
        parser.link_arguments("model.ppo_epochs", "data.init_args.repeat_batches")
        # The train sampler shards prompts across processes itself (whole groups per rank, the one-process order of
        # the global batch, an exact resume position): Lightning must not try to wrap it in a DistributedSampler.
        parser.set_defaults({"trainer.use_distributed_sampler": False})
        parser.add_argument("--world", type=WorldSettings | None, default=None, help="prepare the embedded world first")
        parser.add_argument(
            "--warm_start_config", type=str | None, default=None, help="config that makes model.init_checkpoint"
        )
        parser.add_argument(
            "--resume_changes",
            type=str | None,
            default=None,
            help="comma-separated config keys a --ckpt_path resume may change (wavalign.runtime.run_config)",
        )

    def instantiate_trainer(self, **kwargs):
        """The Trainer, with StepProgressBar (progress in optimiser steps) unless the config brings its own bar or
        turns the bar off."""
        trainer = self._get(self.config_init, "trainer", default={})
        listed = trainer.get("callbacks") or []
        listed = listed if isinstance(listed, list) else [listed]
        wants_bar = trainer.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(c, ProgressBar) for c in listed) and "callbacks" not in kwargs:
            kwargs["callbacks"] = [*listed, StepProgressBar()]
        return super().instantiate_trainer(**kwargs)

    def before_instantiate_classes(self) -> None:
        self._started, self._stage_seconds = time.time(), {}
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if cfg.get("world") is not None:
            from wavalign.world.extras import write_world_extras
            from wavalign.world.prepare import prepare_world

            w = WorldSettings.from_mapping(cfg.world)
            prepare_world(w)
            write_world_extras(w.dir)
            self._stage_seconds["world"] = time.time() - self._started
        checkpoint = cfg.model.get("init_checkpoint")
        if cfg.get("warm_start_config") and checkpoint:
            stamp = os.path.join(cfg.world.dir, "manifest.json") if cfg.get("world") is not None else None
            begun = time.time()
            ensure_checkpoint(checkpoint, cfg.warm_start_config, data_stamp=stamp)
            self._stage_seconds["warm start"] = time.time() - begun

    def _tell_summary(self) -> None:
        """Give the RunSummary the command's start, its earlier stages' durations and its command line."""
        cfg = self.config[self.subcommand]
        configs = [str(c) for c in cfg.get("config") or []]
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunSummary):
                callback.started_at = getattr(self, "_started", None)
                callback.stage_seconds = dict(getattr(self, "_stage_seconds", {}))
                callback.command = shlex.join([python_name(), "-m", "wavalign", *self._argv])
                callback.configs = configs
                callback.python = python_name()

    def before_validate(self) -> None:
        self._tell_summary()

    def before_test(self) -> None:
        self._tell_summary()

    def before_fit(self) -> None:
        self._tell_summary()
        add_interrupt_checkpoint(self.trainer)
        self.trainer.callbacks.append(DropEmptyRun())  # a run failing before step 1 leaves no empty version folder
        cfg = self.config[self.subcommand]
        flat = flat_config(cfg.as_dict())
        self.trainer.callbacks.append(RunConfigRecord(flat))  # every checkpoint says which settings made it
        kwargs = self.config_init[self.subcommand]
        if kwargs.get("ckpt_path") == "last":
            path = find_last_checkpoint(self.trainer)
            if path is None:
                print("resume: --ckpt_path last, but this run has no checkpoint yet: starting from step 0", flush=True)
            kwargs["ckpt_path"] = None if path is None else str(path)
        if kwargs.get("ckpt_path"):  # refuses (naming the keys) a checkpoint of a run with other settings
            accepted = [k.strip() for k in (cfg.get("resume_changes") or "").split(",") if k.strip()]
            for warning in check_resume(kwargs["ckpt_path"], flat, accepted):
                print(f"resume: warning: {warning}", flush=True)
            print(f"resume: continuing from {kwargs['ckpt_path']}", flush=True)

    def before_predict(self) -> None:
        # Nothing is logged in predict: everything goes to listen.output_dir, and no empty logger version (with its
        # config.yaml) is left among the training runs. (The gate restores no state outside fit, so a checkpoint of
        # another stage, such as the SFT warm start under the RL config, loads.)
        self.trainer.callbacks = [c for c in self.trainer.callbacks if not isinstance(c, SaveConfigCallback)]
        self.trainer.loggers = []
        checkpoint = self.config_init[self.subcommand].get("ckpt_path")
        if checkpoint:
            check_checkpoint_fits(self.model, checkpoint)

    def after_predict(self) -> None:
        """The output folder, printed after Lightning's progress bar has finished."""
        for callback in self.trainer.callbacks:
            if isinstance(callback, ReplyWriter) and callback.summary:
                print(callback.summary, flush=True)


def load_checkpoint(config: str, checkpoint: str, overrides: Sequence[str] = ()) -> Loaded:
    """`checkpoint` loaded into the module `config` builds (its world prepared or reused; never a warm-start run),
    for the tools below this module that read a trained policy (wavalign.world.loader says why they get it here)."""
    cli = _built(
        "--config",
        config,
        "--model.init_checkpoint",
        checkpoint,
        "--trainer.logger",
        "false",
        "--warm_start_config=null",
        *overrides,
    )
    return Loaded(cli.model.eval(), cli.config.get("world"))


def _built(*args: str) -> WavAlignCLI:
    """The CLI's module and data module for `args`, built without running (load_checkpoint, build_row_checker).
    LightningCLI reads `args`; the caller's own command-line flags are kept out of its sight."""
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        return WavAlignCLI(WavAlignModule, WavAlignDataModule, subclass_mode_data=True, run=False, args=list(args))
    finally:
        sys.argv = argv


def build_row_checker(config: str) -> RowChecker:
    """`check-data --config`: the module and data module `config` builds (no weights loaded, no warm start), and a
    function giving the start-up problems `fit` would find in rows under them (wavalign.data.row_limits)."""
    chatty = [
        logging.getLogger(n) for n in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed")
    ]
    levels = [log.level for log in chatty]
    for log in chatty:  # "GPU available", "Seed set to": a Trainer's start-up lines, noise in a data report
        log.setLevel(logging.WARNING)
    try:
        cli = _built(
            "--config", config, "--model.init_checkpoint=null", "--trainer.logger=false", "--warm_start_config=null"
        )
    finally:
        for log, level in zip(chatty, levels):
            log.setLevel(level)
    model, limit = cli.model, getattr(cli.datamodule, "max_tokens", None)
    max_new = max(model.sampling.max_new_tokens, model.eval_sampling.max_new_tokens)
    return lambda rows: rows_problems(rows, model.policy, model.speech, limit, max_new)


def main(args: list[str] | None = None) -> WavAlignCLI | None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    silence_known_noise()  # Lightning's cloud-service tips and a deprecation inside Lightning (wavalign.runtime.quiet)
    provide_loader(load_checkpoint)  # for `world diagnose`, `world probe-heard` and the ablation's analysis
    provide_row_checker(build_row_checker)  # for `check-data --config`
    argv = sys.argv[1:] if args is None else args
    code = dispatch(argv)  # `--help` lists every command; the package's tools (check-data, world, ablate, ...) run here
    if code is not None:
        raise SystemExit(code)
    try:
        return WavAlignCLI(
            WavAlignModule,
            WavAlignDataModule,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            args=args,
        )
    except SIGTERMException:  # a SystemExit with no code (status 0): a scheduler would take the run as finished
        print(f"stopped by SIGTERM: exit status {SIGTERM_STATUS} (128 + SIGTERM)", file=sys.stderr, flush=True)
        raise SystemExit(SIGTERM_STATUS) from None


# A run stopped on purpose, with a message that says what and where: bad data, a refused resume, a guard.
STOPPED_ON_PURPOSE = (SchemaError, ConfigMismatch, Diverged, JudgeOutage, NonFiniteTraining)


def command_line() -> None:
    """`wavalign ...` and `python -m wavalign ...`: main(), with a run stopped on purpose reported as its message
    alone (exit status 1); a traceback through Lightning's loops would only bury it. In-process callers of main()
    still get the exception."""
    try:
        main()
    except STOPPED_ON_PURPOSE as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
