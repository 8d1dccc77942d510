"""PeriodicCheckpoint: a checkpoint every N steps and one at the end, so `--ckpt_path last` always has a recent one."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class PeriodicCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint with `every_n_train_steps` (default 100) and `save_last`, plus `last.ckpt` written
    when training ends off the interval: with a step interval alone, Lightning saves nothing at the end of a run
    whose length is not a multiple of it (and a run shorter than one interval would leave no checkpoint at all).
    A crash loses at most `every_n_train_steps` steps; SIGTERM, Ctrl-C and exceptions are covered by the interrupt
    checkpoint the CLI adds (wavalign.runtime.resume).

    Any other ModelCheckpoint argument (dirpath, monitor, save_top_k, ...) may be given too.

    Args:
        every_n_train_steps: Save every N optimiser steps, >= 1; lower it to lose less work on a crash, raise it to
            spend less time writing checkpoints.
        save_last: Keep `last.ckpt` up to date (what `--ckpt_path last` resumes from), and write it at the end of
            training; False saves only the interval checkpoints.
    """

    def __init__(self, every_n_train_steps: int = 100, save_last: bool = True, **kwargs: Any) -> None:
        if every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1, got {every_n_train_steps}")
        super().__init__(every_n_train_steps=every_n_train_steps, save_last=save_last, **kwargs)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (
            self.save_last
            and not self._should_skip_saving_checkpoint(trainer)
            and self._last_global_step_saved != trainer.global_step
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        super().on_train_end(trainer, pl_module)
