"""Gate rules: how much of the step is preference optimisation (lambda) and how much SFT anchoring (1 - lambda).

Each rule is a small class with a state dict so a resumed run continues the same lambda sequence. A new rule is a
subclass with `update` plus one YAML line (see README).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from wavalign.policy.base import SequenceBatch

MAX_VARIANCE_1_TO_5 = 4.0  # the largest population variance of scores on 1..5


@dataclass
class GateOutput:
    lam: float  # the step's lambda, after smoothing and clamping (the mean of group_lam when that is set)
    lam_raw: float  # the batch mean of the per-group raw gate, before smoothing
    group_lam: Tensor | None = None  # (B,) a lambda per prompt group; None: every group uses `lam`


@dataclass
class TokenInputs:
    """What a rule may read to weight tokens, at each update (current policy, detached where it is a weight).

    logp (N, T) / demo_logp (B, T): current log-probs of the rollouts / demonstrations (grad flows; detach them);
    entropy / demo_entropy: their per-position entropies (None unless the rule sets needs_entropy);
    advantages (N,): the rollouts' group advantages; masks: the completion masks the losses average over."""

    logp: Tensor
    demo_logp: Tensor
    advantages: Tensor | None = None
    mask: Tensor | None = None
    demo_mask: Tensor | None = None
    entropy: Tensor | None = None
    demo_entropy: Tensor | None = None


class GateRule(ABC):
    """Maps the rewards of one batch of groups, shape (B, G), to the step's lambda."""

    @abstractmethod
    def update(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput: ...

    @property
    def fixed_lambda(self) -> float | None:
        """lambda when it does not depend on rewards (lets a pure-SFT run skip sampling), else None."""
        return None

    needs_entropy: bool = False  # True: the module computes per-token entropies for token_weights
    sum_terms: bool = False  # True: L = L_PO + L_SFT at full scale, the rule's token weights doing all the mixing
    demo_in_group: bool = False  # True: each demonstration is judged and joins its GRPO group as an off-policy row
    # False: the rule keeps per-process state that can add a term on one process and not another at the same step
    # (ReLIFT's buffer). Harmless when each process holds whole weights (DDP); with sharded weights (FSDP2) every
    # forward is a collective, so wavalign.sharding refuses such a rule rather than hang.
    even_across_processes: bool = True

    def sft_demonstrations(self, demonstrations: SequenceBatch, make_batch: Callable[..., SequenceBatch]) -> SequenceBatch | None:
        """The demonstrations this fresh batch's SFT term trains on, asked once per rollout batch after update:
        by default the batch's own; None: no SFT term; a rule that replays stored demonstrations (ReLIFT) builds
        them with make_batch(prompts, replies), the policy's own padding."""
        return demonstrations

    def demo_ratio(self, demo_logp: Tensor) -> Tensor:
        """The per-token 'ratio' of a demonstration row in the group (demo_in_group): here pi_theta itself, the
        behaviour policy's probability taken as 1; a rule shapes it (LUFFY: p / (p + gamma))."""
        return demo_logp.exp()

    def token_weights(self, inputs: TokenInputs) -> tuple[Tensor | None, Tensor | None]:
        """Optional per-token weights (policy-gradient term (N, T) or (N, 1), SFT term (B, T) or (B, 1)) from the
        current step's tensors, computed at each update; None leaves a term unweighted."""
        return None, None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Stateless rules have nothing to restore."""


class FixedGate(GateRule):
    """A constant mix, lambda = lam (the paper's fixed baselines: 0.5, 0.7, 0.8)."""

    def __init__(self, lam: float = 0.5) -> None:
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"FixedGate lam must be in [0, 1], got {lam}")
        self.lam = float(lam)

    @property
    def fixed_lambda(self) -> float | None:
        return self.lam

    def update(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput:
        return GateOutput(self.lam, self.lam)


class SFTOnly(FixedGate):
    """lambda = 0: the SFT-only baseline (rollouts still run, so rewards stay comparable)."""

    def __init__(self) -> None:
        super().__init__(0.0)


class RLOnly(FixedGate):
    """lambda = 1: pure preference optimisation, no acoustic anchor."""

    def __init__(self) -> None:
        super().__init__(1.0)


class DynamicGate(GateRule):
    """The paper's gate: per group v = clip(Var_pop(R)/4, 0, 1), g = sigmoid(k (max R - tau)),
    lambda_raw = lambda_max g v; the step's raw value is the mean over groups, smoothed by an EMA with weight alpha
    on the previous lambda and clamped to [0, lambda_max]. alpha = 0 is the "no EMA" ablation.

    Unreliable scores are left out of a group's statistics; a group with fewer than two reliable scores counts as
    uninformative (v = 0).
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
