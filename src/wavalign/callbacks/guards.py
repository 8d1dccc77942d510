"""RunGuards: a long run must not burn GPU hours on a dead judge or train on NaNs, and must never do so silently.

- Judge outage: after `max_failed_judge_steps` consecutive rollout batches in which every score is unreliable (the
  gate would otherwise go on as pure SFT indefinitely), the run stops with an error naming the judge, its last error
  and how to resume; the interrupt checkpoint (wavalign.runtime.resume) is written on the way out.
  Under several processes the count is over every rank's scores (gathered for the gate), so all ranks stop at
  the same step instead of one rank stopping while the others wait for it.
  `judge/consecutive_failed_steps` is logged every step. The sanity validation before step 1 counts too, one
  failed batch for one failed step, so a judge that is down from the start costs no more than the guard allows.
- Non-finite values: a step whose loss or any gradient is NaN/inf has its gradients dropped before the optimiser
  (and before clipping), so the weights and optimiser moments never see them and no checkpoint holds them; counted
  in `guard/skipped_steps`. `max_nonfinite_steps` in a row stop the run. Non-finite rewards never get this far: the
  scoring marks them unreliable (wavalign.step.scoring).
The CLI adds this callback as the `guards` key (`--guards.max_failed_judge_steps 5`).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor


class JudgeOutage(RuntimeError):
    """Every score unreliable for too long: the judge is down or misconfigured."""


class NonFiniteTraining(RuntimeError):
    """Too many consecutive steps with a NaN/inf loss or gradient."""


class RunGuards(pl.Callback):
    """Stops a run on a judge outage or on repeated NaN/inf losses or gradients, and drops non-finite updates.

    Args:
        max_failed_judge_steps: Consecutive rollout batches in which every score is unreliable before the run stops
            with JudgeOutage, >= 1; raise it for a judge server with longer outages you are willing to train through
            as pure SFT.
        max_nonfinite_steps: Consecutive steps with a NaN/inf loss or gradient (each skipped) before the run stops
            with NonFiniteTraining, >= 1.
    """

    def __init__(self, max_failed_judge_steps: int = 3, max_nonfinite_steps: int = 3) -> None:
        if max_failed_judge_steps < 1 or max_nonfinite_steps < 1:
            raise ValueError(
                f"max_failed_judge_steps and max_nonfinite_steps must be >= 1, got {max_failed_judge_steps}, {max_nonfinite_steps}"
            )
        self.max_failed_judge_steps, self.max_nonfinite_steps = max_failed_judge_steps, max_nonfinite_steps
        self.failed_judge_steps = 0
        self.nonfinite_in_a_row = 0
        self.skipped_steps = 0
        self._loss_finite = True
        self._last_entry_seen: Any = None

    # ---- non-finite losses and gradients -------------------------------------------------------------------------
    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        self._loss_finite = bool(torch.isfinite(loss.detach()).all())

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        finite = self._loss_finite and all(bool(torch.isfinite(g).all()) for g in grads)
        self._loss_finite = True
        if finite:
            self.nonfinite_in_a_row = 0
            return
        for group in optimizer.param_groups:  # an optimiser skips parameters without a gradient: no update at all
            for p in group["params"]:
                p.grad = None
        self.skipped_steps += 1
        self.nonfinite_in_a_row += 1
        if self.nonfinite_in_a_row >= self.max_nonfinite_steps:
            raise NonFiniteTraining(
                f"{self.nonfinite_in_a_row} steps in a row had a NaN/inf loss or gradient (step {trainer.global_step}); "
                "their updates were skipped. Lower the learning rate or check the data and judge, then resume with "
                "--ckpt_path last (the checkpoint holds no non-finite weights)"
            )

    # ---- judge outages -------------------------------------------------------------------------------------------
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        pl_module.log("guard/skipped_steps", float(self.skipped_steps), batch_size=1)
        entry = getattr(pl_module, "last_entry", None)
        judged = None if entry is None else entry.judged
        fresh = judged is not None and entry is not self._last_entry_seen
        if fresh:  # a new rollout batch was judged this step (PPO epochs reuse it without judging again)
            self._last_entry_seen = entry
            scores = judged.scores
            none_reliable = not bool(judged.global_reliable.any())  # every rank's flags: all ranks stop at one step
            if scores and none_reliable:
                self.failed_judge_steps += 1
            else:
                self.failed_judge_steps = 0
        pl_module.log("judge/consecutive_failed_steps", float(self.failed_judge_steps), batch_size=1)
        retried = getattr(getattr(pl_module, "judge", None), "total_retried", None)  # HttpJudge counts its retries
        if retried is not None:
            pl_module.log("judge/retried_attempts", float(retried), batch_size=1)
        if fresh and self.failed_judge_steps >= self.max_failed_judge_steps:
            for logger in trainer.loggers:  # Lightning would flush this step's metrics only after the hook returns
                logger.log_metrics(
                    {"judge/consecutive_failed_steps": float(self.failed_judge_steps)}, step=trainer.global_step - 1
                )
            errors = [s.error for s in judged.scores if s.error]
            raise JudgeOutage(
                f"{getattr(pl_module, 'judge', None)!r}: every score was unreliable for {self.failed_judge_steps} "
                f"consecutive steps (last error: {errors[-1] if errors else 'none given'}); stopped at step "
                f"{trainer.global_step} instead of training on as pure SFT. Fix the judge, then run the same command "
                "with --ckpt_path last"
            )

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """The sanity validation before step 1 is judged too: a batch of it with no reliable score counts as a failed
        judge step, so a judge that is down from the start stops the run there instead of after the sanity check's
        retries plus max_failed_judge_steps training steps."""
        scored = getattr(pl_module, "last_scored", None)
        if not trainer.sanity_checking or scored is None or not scored.scores:
            return
        none_reliable = trainer.strategy.reduce_boolean_decision(not bool(scored.reliable.any()), all=True)
        self.failed_judge_steps = self.failed_judge_steps + 1 if none_reliable else 0
        if self.failed_judge_steps >= self.max_failed_judge_steps:
            errors = [s.error for s in scored.scores if s.error]
            raise JudgeOutage(
                f"{getattr(pl_module, 'judge', None)!r}: every score of {self.failed_judge_steps} batches of the sanity "
                f"validation was unreliable (last error: {errors[-1] if errors else 'none given'}); stopped before "
                "step 1. Fix the judge, then run the same command"
            )

    # ---- checkpoint ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "failed_judge_steps": self.failed_judge_steps,
            "nonfinite_in_a_row": self.nonfinite_in_a_row,
            "skipped_steps": self.skipped_steps,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.failed_judge_steps = int(state_dict.get("failed_judge_steps", 0))
        self.nonfinite_in_a_row = int(state_dict.get("nonfinite_in_a_row", 0))
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))
