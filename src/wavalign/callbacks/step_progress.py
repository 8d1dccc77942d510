"""StepProgressBar: the training bar counts optimiser steps toward trainer.max_steps.

WavAlign's runs are step-bound (max_steps, epochs unbounded): Lightning's bars then restart every epoch, over the
batches of one pass through a small prompt set, and Rich's reads "Epoch 14/-2" (max_epochs - 1 with max_epochs=-1).
This bar is one line for the whole run, "train step n/max_steps", resumed runs starting at the restored step. Runs
bound by epochs instead keep Lightning's per-epoch bar, described "Epoch e/max_epochs" (1-based both). The CLI adds
it unless the config lists a progress bar of its own or sets trainer.enable_progress_bar false.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf


def step_bound(trainer: pl.Trainer) -> bool:
    return trainer.max_steps is not None and trainer.max_steps > 0


class StepProgressBar(TQDMProgressBar):
    """TQDMProgressBar whose training bar runs over optimiser steps (trainer.global_step / trainer.max_steps)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if step_bound(trainer):
            bar = self.train_progress_bar
            bar.reset(total=trainer.max_steps)
            bar.initial = 0
            bar.n = trainer.global_step  # a resumed run starts where it left off
            bar.set_description("train step")
            bar.refresh()

    def on_train_epoch_start(self, trainer: pl.Trainer, *_: Any) -> None:
        if not step_bound(trainer):  # Lightning's per-epoch bar, described 1-based
            if self._leave:
                self.train_progress_bar = self.init_train_tqdm()
            bar = self.train_progress_bar
            bar.reset(total=convert_inf(self.total_train_batches))
            bar.initial = 0
            total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
            bar.set_description(f"Epoch {trainer.current_epoch + 1}{total}")
        # step-bound: one bar for the whole run, never reset at an epoch boundary

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not step_bound(trainer):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar, n = self.train_progress_bar, trainer.global_step
        if bar is not None and bar.n != n and self._should_update(n, convert_inf(bar.total)):
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            bar.refresh()
