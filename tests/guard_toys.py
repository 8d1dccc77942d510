"""Test callbacks that break a run on purpose at chosen steps."""

from __future__ import annotations

import lightning.pytorch as pl
import torch


class NanGradAt(pl.Callback):
    """Puts a NaN into one gradient at the given steps (after backward, before the optimiser) and records the
    policy's weights around those steps."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = steps
        self.before: dict[int, torch.Tensor] = {}
        self.after: dict[int, torch.Tensor] = {}

    def _flat(self, pl_module: pl.LightningModule) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in pl_module.parameters() if p.requires_grad]).clone()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step in self.steps:
            self.before[trainer.global_step] = self._flat(pl_module)

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step in self.steps:
            next(p for p in pl_module.parameters() if p.grad is not None).grad.view(-1)[0] = float("nan")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step - 1  # the optimiser step was taken (or skipped) and counted
        if step in self.before:
            self.after[step] = self._flat(pl_module)


class LrAt(pl.Callback):
    """Sets every parameter group's learning rate to `lr` before the update of step `step`: divergence at a known
    point, after the run has saved good checkpoints."""

    def __init__(self, step: int, lr: float) -> None:
        self.step, self.lr = step, lr

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = self.lr
