"""DivergenceGuard: a diverging run stops (or skips the step) before its weights reach a checkpoint.

RunGuards (wavalign.callbacks.guards) drops updates whose loss or gradient is NaN/inf. A run can diverge with every
one of those finite: with a learning rate of 1e30 the first update is finite, yet it leaves weights near 1e30, and
the next rollout dies inside sampling ("probability tensor contains either inf, nan or element < 0"). Saving those
weights on the way out made `--ckpt_path last` crash at once. So, every step:

- Weights: after the optimiser step, any trainable weight that is NaN/inf or larger in magnitude than
  `max_param_abs` stops the run with `Diverged`, before any checkpoint callback of that step runs (Lightning runs
  checkpoint callbacks last) and without the interrupt checkpoint (wavalign.runtime.resume skips it for Diverged).
  The newest checkpoint on disk then predates the divergence, and is what `--ckpt_path last` resumes.
- Sampling: a rollout whose logits are NaN/inf (the weights are finite but the logits overflow) raises `Diverged`
  naming the step instead of torch's bare sampling error (`sampling_guard`, around every rollout; the policies
  check the logits before sampling, wavalign.policy.finite_logits, since on CUDA multinomial's failure is a
  device-side assert after which nothing can run).
- Loss spikes: once `spike_window` steps are seen, a step whose |loss| exceeds `loss_spike` times the median |loss|
  of the last `spike_window` kept steps (at least SPIKE_FLOOR) has its gradients dropped, like a NaN step; counted
  in `guard/spike_skips`. `max_spike_steps` spikes in a row stop the run: either it diverges, or the loss moved to a
  new level for good (then raise `loss_spike` or set it to null).

Under several processes the loss is averaged over ranks and every decision is taken jointly, so all ranks skip or
stop at the same step. The CLI adds this callback as the `divergence` key (`--divergence.max_param_abs 1e3`).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from contextlib import contextmanager
from typing import Any, Iterator

import lightning.pytorch as pl
import torch
from torch import Tensor

from wavalign.policy.finite_logits import NonFiniteLogits
from wavalign.runtime.resume import UnsaveableState

# Losses are per-token negative log-likelihoods and clipped ratios: below one nat, ratios of |loss| are noise (a PO
# loss near 0 for groups of equal rewards would otherwise make any ordinary step look like a spike).
SPIKE_FLOOR = 1.0
SAMPLING_ERROR = "probability tensor contains"  # torch.multinomial's message for NaN/inf/negative probabilities


class Diverged(UnsaveableState):
    """The weights or the policy's outputs stopped being usable: no checkpoint of them is written."""


@contextmanager
def sampling_guard(step: int | None = None) -> Iterator[None]:
    """Re-raise torch's sampling failure on NaN/inf probabilities as Diverged, naming the step."""
    try:
        yield
    except RuntimeError as e:
        if not isinstance(e, NonFiniteLogits) and SAMPLING_ERROR not in str(e):
            raise
        at = "" if step is None else f" at step {step}"
        raise Diverged(
            f"sampling probabilities are NaN or infinite{at}: the policy's outputs overflowed (diverged weights; "
            "lower the learning rate). No checkpoint of these weights is written"
        ) from e


def _local(p: Tensor) -> Tensor:
    """The part of a weight this process holds: a DTensor's local shard (FSDP2), ZeRO-3's partition, else itself."""
    if hasattr(p, "to_local"):
        return p.to_local()
    return getattr(p, "ds_tensor", p)


class DivergenceGuard(pl.Callback):
    """Stops a run whose weights are non-finite or exploding, and skips steps whose loss spikes.

    Args:
        max_param_abs: Largest magnitude a trainable weight may reach; beyond it (or NaN/inf) the run stops with
            Diverged before the step's weights are saved. Trained LLM weights stay well below 1e3; None checks only
            for NaN/inf.
        loss_spike: Skip a step whose |loss| exceeds this many times the median |loss| of recent steps (at least
            1 nat); None turns spike detection off.
        spike_window: How many recent kept steps the median is over; nothing is a spike before that many steps.
        max_spike_steps: Spikes in a row (each skipped) before the run stops with Diverged, >= 1.
    """

    def __init__(
        self,
        max_param_abs: float | None = 1e4,
        loss_spike: float | None = 10.0,
        spike_window: int = 20,
        max_spike_steps: int = 3,
    ) -> None:
        if max_param_abs is not None and not max_param_abs > 0:
            raise ValueError(f"divergence.max_param_abs must be > 0 or null, got {max_param_abs}")
        if loss_spike is not None and not loss_spike > 1:
            raise ValueError(f"divergence.loss_spike must be > 1 or null, got {loss_spike}")
        if spike_window < 1 or max_spike_steps < 1:
            raise ValueError(f"spike_window and max_spike_steps must be >= 1, got {spike_window}, {max_spike_steps}")
        self.max_param_abs, self.loss_spike = max_param_abs, loss_spike
        self.spike_window, self.max_spike_steps = spike_window, max_spike_steps
        self.recent: deque[float] = deque(maxlen=spike_window)
        self.spikes_in_a_row = 0
        self.spike_skips = 0
        self._loss: float | None = None

    # ---- loss spikes ---------------------------------------------------------------------------------------------
    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor) -> None:
        if self.loss_spike is not None:
            self._loss = float(trainer.strategy.reduce(loss.detach().float(), reduce_op="mean"))

    def is_spike(self, loss: float) -> bool:
        """|loss| beyond loss_spike x the median |loss| of the last spike_window kept steps (at least SPIKE_FLOOR)."""
        if self.loss_spike is None or len(self.recent) < self.spike_window or not math.isfinite(loss):
            return False
        return abs(loss) > self.loss_spike * max(statistics.median(self.recent), SPIKE_FLOOR)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        loss, self._loss = self._loss, None
        if loss is None or not math.isfinite(loss):  # a NaN/inf loss is RunGuards' to skip; it joins no median
            return
        if not self.is_spike(loss):
            self.spikes_in_a_row = 0
            self.recent.append(abs(loss))
            return
        for group in optimizer.param_groups:  # as for a NaN step: an optimiser skips parameters without a gradient
            for p in group["params"]:
                p.grad = None
        self.spike_skips += 1
        self.spikes_in_a_row += 1
        if self.spikes_in_a_row >= self.max_spike_steps:
            raise Diverged(
                f"the loss spiked for {self.spikes_in_a_row} steps in a row (step {trainer.global_step}: |loss| "
                f"{abs(loss):.4g} > {self.loss_spike} x median {statistics.median(self.recent):.4g} of the last "
                f"{len(self.recent)} steps); their updates were skipped. If the loss moved to a new level on purpose, "
                "raise --divergence.loss_spike or set it to null; else lower the learning rate"
            )

    # ---- weights -------------------------------------------------------------------------------------------------
    def weight_problem(self, pl_module: pl.LightningModule) -> str | None:
        """None when every trainable weight is finite and within max_param_abs, else which one is not."""
        named = [(n, _local(p).detach()) for n, p in pl_module.named_parameters() if p.requires_grad]
        named = [(n, t) for n, t in named if t.numel()]
        if not named:
            return None
        peak = float(torch.stack([t.abs().amax().float() for _, t in named]).amax())  # NaN propagates
        if peak == peak and peak != float("inf") and (self.max_param_abs is None or peak <= self.max_param_abs):
            return None
        for name, t in named:  # the rare path: say which weight
            m = float(t.abs().amax())
            if m != m or m == float("inf"):
                return f"weight {name} holds NaN or infinite values"
            if self.max_param_abs is not None and m > self.max_param_abs:
                return f"weight {name} reached |w| = {m:.3g} > divergence.max_param_abs={self.max_param_abs:g}"
        return f"a weight reached |w| = {peak:.3g}"

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        pl_module.log("guard/spike_skips", float(self.spike_skips), batch_size=1)
        problem = self.weight_problem(pl_module)
        if trainer.strategy.reduce_boolean_decision(problem is not None, all=False):  # every rank stops together
            raise Diverged(
                f"step {trainer.global_step} diverged: {problem or 'on another process, a weight is non-finite or exploding'}. "
                "The run stops before these weights are saved; lower the learning rate (or raise "
                "--divergence.max_param_abs if such weights are expected)"
            )

    # ---- checkpoint ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"recent": list(self.recent), "spikes_in_a_row": self.spikes_in_a_row, "spike_skips": self.spike_skips}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.recent = deque((float(x) for x in state_dict.get("recent", [])), maxlen=self.spike_window)
        self.spikes_in_a_row = int(state_dict.get("spikes_in_a_row", 0))
        self.spike_skips = int(state_dict.get("spike_skips", 0))
