"""The paper's dynamic gate: lambda from each group's reward variance and best reward, EMA-smoothed and capped."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from wavalign.gates.base import GateOutput, GateRule

MAX_VARIANCE_1_TO_5 = 4.0  # the largest population variance of scores on 1..5


class DynamicGate(GateRule):
    """The paper's gate: per group v = clip(Var_pop(R)/4, 0, 1), g = sigmoid(k (max R - tau)),
    lambda_raw = lambda_max g v; the step's raw value is the mean over groups, smoothed by an EMA with weight alpha
    on the previous lambda and clamped to [0, lambda_max]. alpha = 0 is the "no EMA" ablation.

    Unreliable scores are left out of a group's statistics; a group with fewer than two reliable scores counts as
    uninformative (v = 0).

    Args:
        lambda_max: the cap on lambda (paper 0.8): at most this share of the step is preference optimisation.
        alpha: the EMA weight on the previous lambda (paper 0.9); 0 is the "no EMA" ablation.
        k: the sharpness of the "a good sample exists" sigmoid (paper 5).
        tau: the reward the best sample must pass for a group to count as solvable (paper 3, on the 1-5 scale).
    """

    def __init__(self, lambda_max: float = 0.8, alpha: float = 0.9, k: float = 5.0, tau: float = 3.0) -> None:
        if not 0.0 <= lambda_max <= 1.0 or not 0.0 <= alpha < 1.0:
            raise ValueError(f"need 0 <= lambda_max <= 1 and 0 <= alpha < 1, got {lambda_max}, {alpha}")
        self.lambda_max, self.alpha, self.k, self.tau = float(lambda_max), float(alpha), float(k), float(tau)
        self.lam_prev: float | None = None

    def group_raw(self, rewards: Tensor, reliable: Tensor | None = None) -> Tensor:
        """lambda_raw per group, shape (B,)."""
        r = rewards.to(torch.float64)
        w = torch.ones_like(r) if reliable is None else reliable.to(torch.float64)
        n = w.sum(dim=1)
        mean = (r * w).sum(dim=1) / n.clamp(min=1)
        var = (((r - mean.unsqueeze(1)) ** 2) * w).sum(dim=1) / n.clamp(min=1)
        v = torch.clamp(var / MAX_VARIANCE_1_TO_5, 0.0, 1.0)
        v = torch.where(n >= 2, v, torch.zeros_like(v))
        best = torch.where(w > 0, r, torch.full_like(r, -math.inf)).max(dim=1).values
        g = torch.where(n > 0, torch.sigmoid(self.k * (best - self.tau)), torch.zeros_like(v))
        return self.lambda_max * g * v

    def update(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput:
        raw = float(self.group_raw(rewards, reliable).mean())
        lam = raw if self.lam_prev is None else (1.0 - self.alpha) * raw + self.alpha * self.lam_prev
        lam = min(max(lam, 0.0), self.lambda_max)
        self.lam_prev = lam
        return GateOutput(lam, raw)

    def state_dict(self) -> dict[str, Any]:
        return {"lam_prev": self.lam_prev}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lam_prev = state.get("lam_prev")
