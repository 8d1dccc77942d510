"""Gradient geometry: the paper's evidence for text-only preference optimisation, measured on the run itself.

Every N steps, the GRPO loss of the step's rollouts is taken twice, once restricted to the text tokens and once to
the speech tokens (the exact modality masks, without the empty-row fallback the training loss uses), and the two
gradients with respect to the trainable parameters are compared: grad/norm_text, grad/norm_speech and
grad/cos_text_speech. The paper reports a text norm far above the speech norm and a cosine near zero, which is why a
single sequence-level advantage should not be spread over speech tokens.

The gradients come from torch.autograd.grad on a separate forward at the step's parameters (before the optimiser
moves them), so the real step's .grad is never touched. The loss is L_PO before the lambda weighting: the direction
does not depend on lambda, and the norms are those of the preference loss itself.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from wavalign.step.rollouts import RolloutEntry


def modality_gradients(pl_module: pl.LightningModule, entry: RolloutEntry) -> dict[str, Tensor]:
    """Flattened gradients of the GRPO loss restricted to text and to speech tokens, keyed 'text' / 'speech'."""
    params = [p for p in pl_module.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("gradient geometry: the module has no trainable parameters")
    rollouts = entry.rollouts
    with torch.enable_grad():
        logp = pl_module.policy.token_logprobs(rollouts)
        out: dict[str, Tensor] = {}
        masks = {"text": rollouts.masks.text, "speech": rollouts.masks.speech}
        for i, (name, mask) in enumerate(masks.items()):
            loss = pl_module.preference.grpo(entry, logp, mask).loss
            grads = torch.autograd.grad(loss, params, retain_graph=i == 0, allow_unused=True)
            out[name] = torch.cat(
                [(torch.zeros_like(p) if g is None else g).flatten().double() for g, p in zip(grads, params)]
            )
    return out


def _sharded(pl_module: pl.LightningModule) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in pl_module.parameters())


def geometry(grads: dict[str, Tensor]) -> dict[str, float]:
    """Norms of both gradients and their cosine; the cosine is left out when either gradient is zero (undefined)."""
    g_text, g_speech = grads["text"], grads["speech"]
    n_text, n_speech = float(g_text.norm()), float(g_speech.norm())
    out = {"grad/norm_text": n_text, "grad/norm_speech": n_speech}
    if n_text > 0 and n_speech > 0:
        out["grad/cos_text_speech"] = float(torch.dot(g_text, g_speech) / (n_text * n_speech))
    return out


class GradientGeometryCallback(pl.Callback):
    """Logs grad/norm_text, grad/norm_speech, grad/cos_text_speech every `every_n_steps` optimiser steps
    (steps 0, N, 2N, ...), from the rollouts the module trained on (`pl_module.last_entry`). The measurement runs in
    eval mode (no dropout noise) and costs one extra forward and two backward passes.

    Under DDP the figures are process 0's gradients of its own groups (logged by process 0). Under sharded weights
    (FSDP2, whose parameters are DTensors) the measurement is skipped with a warning: autograd.grad on sharded
    parameters bypasses FSDP's gradient reduction, so the flattened per-process pieces would not be the gradient.

    Args:
        every_n_steps: Measure every N optimiser steps (steps 0, N, 2N, ...), >= 1; each measurement costs one
            extra forward and two backward passes, so raise it for long runs.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        if every_n_steps < 1:
            raise ValueError(f"GradientGeometryCallback every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.last: dict[str, float] = {}
        self._last_step = -1
        self._warned_sharded = False

    def reads_rollouts_at(self, step: int) -> bool:
        """Whether the rollouts of the step that optimiser step `step` trains on are read (rollout_steps)."""
        return step % self.every_n_steps == 0

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        step = trainer.global_step
        entry = getattr(pl_module, "last_entry", None)
        if step % self.every_n_steps or step == self._last_step or entry is None:
            return
        self._last_step = step
        if _sharded(pl_module):
            if not self._warned_sharded:
                rank_zero_warn(
                    "GradientGeometryCallback: skipped under sharded parameters (FSDP); run it under DDP or on one device"
                )
            self._warned_sharded = True
            return
        was_training = pl_module.training
        pl_module.eval()  # no dropout noise in the measurement
        try:
            self.last = geometry(modality_gradients(pl_module, entry))
        finally:
            pl_module.train(was_training)
        for logger in trainer.loggers:
            logger.log_metrics(self.last, step=step)
