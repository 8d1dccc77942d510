"""When a per-N-steps analysis callback should look at the rollouts the module just trained on, and whether anything
reads a training step's rollouts at all (a λ = 0 gate samples only then)."""

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


def rollouts_read_now(trainer: pl.Trainer | None) -> bool:
    """Whether anything reads the rollouts of the training step about to run: Lightning writes this step's logs
    (every `log_every_n_steps`), or a callback that analyses rollouts every N steps is due (it says so with
    `reads_rollouts_at(step)`). Without a trainer (a step run by hand) every step counts as read."""
    if trainer is None:
        return True
    if trainer._logger_connector.should_update_logs:
        return True
    step = trainer.global_step
    return any(
        getattr(cb, "reads_rollouts_at", None) is not None and cb.reads_rollouts_at(step) for cb in trainer.callbacks
    )
