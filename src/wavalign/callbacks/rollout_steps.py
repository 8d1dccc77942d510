"""When a per-N-steps analysis callback should look at the rollouts the module just trained on."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


def rollouts_due(
    trainer: pl.Trainer, pl_module: pl.LightningModule, every_n_steps: int, last_step: int
) -> tuple[int, Any] | None:
    """(step, rollout entry) after the optimiser step `step` when it is a multiple of every_n_steps, was not handled
    yet (PPO epochs reuse one entry across several batches) and has replies; otherwise None."""
    step = trainer.global_step - 1  # the optimiser step these rollouts were used for
    entry = getattr(pl_module, "last_entry", None)
    if step < 0 or step % every_n_steps or step == last_step or entry is None or not entry.replies:
        return None
    return step, entry
