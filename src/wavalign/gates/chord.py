"""CHORD (Zhang et al., "On-Policy RL Meets Off-Policy Experts: Harmonizing Supervised Fine-Tuning and Reinforcement
Learning via Dynamic Weighting", arXiv 2508.11408; public code modelscope/Trinity-RFT,
trinity/algorithm/policy_loss_fn/chord_policy_loss.py: `mu_schedule_function`, `phi_function`, `MIXCHORDPolicyLossFn`).

L = (1 - mu) L_GRPO + mu L_SFT, i.e. lambda = 1 - mu for the whole batch. mu rises linearly from 0 to mu_peak over
mu_warmup_steps, then follows a half cosine from mu_peak down to mu_valley over mu_decay_steps, and stays at mu_valley.
With phi on (CHORD-phi) each SFT token's NLL is weighted by phi = p (1 - p), p = the current probability of the expert
token, detached: tokens the policy already finds certain (p ~ 1) or implausible (p ~ 0) pull less.

Adaptations: a step here is one fresh rollout batch (the rule is asked once per batch; PPO epochs reuse its mu), counted
from 0 at the first batch and kept in checkpoints. The SFT term keeps this project's per-row mean (upstream's default
is a token mean over the batch).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from wavalign.gates.base import GateOutput, GateRule, TokenInputs


def chord_mu(step: int, warmup_steps: int, decay_steps: int, peak: float, valley: float) -> float:
    """mu at a 0-based step: linear warm-up 0 -> peak, half-cosine decay peak -> valley, then valley."""
    if step < warmup_steps:
        return step / warmup_steps * peak
    if step >= warmup_steps + decay_steps:
        return valley
    cosine = 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / decay_steps))
    return valley + (peak - valley) * cosine


def chord_phi(logp: Tensor) -> Tensor:
    """phi = p (1 - p) of each token's probability, detached (a weight, not a path for gradients)."""
    p = logp.detach().exp()
    return p * (1.0 - p)


class CHORDGate(GateRule):
    """lambda = 1 - mu(step) for the batch; with `phi` the SFT term is weighted per token by p (1 - p).

    Defaults follow upstream's (mu_peak = mu_valley = 0.1, no warm-up or decay: a constant mu of 0.1).

    Args:
        mu_peak: the SFT weight mu reached at the end of the warm-up.
        mu_valley: the SFT weight mu after the cosine decay, kept to the end.
        mu_warmup_steps: rollout batches over which mu rises linearly from 0 to mu_peak.
        mu_decay_steps: rollout batches over which mu falls from mu_peak to mu_valley along a half cosine.
        phi: weight each SFT token by p (1 - p) of the policy's current probability (CHORD-phi); off: CHORD-mu.
    """

    def __init__(
        self,
        mu_peak: float = 0.1,
        mu_valley: float = 0.1,
        mu_warmup_steps: int = 0,
        mu_decay_steps: int = 0,
        phi: bool = True,
    ) -> None:
        if not (0.0 <= mu_valley <= 1.0 and 0.0 <= mu_peak <= 1.0):
            raise ValueError(f"CHORDGate mu_peak and mu_valley must be in [0, 1], got {mu_peak}, {mu_valley}")
        if mu_warmup_steps < 0 or mu_decay_steps < 0:
            raise ValueError(f"CHORDGate step counts must be >= 0, got {mu_warmup_steps}, {mu_decay_steps}")
        self.mu_peak, self.mu_valley = float(mu_peak), float(mu_valley)
        self.mu_warmup_steps, self.mu_decay_steps, self.phi = int(mu_warmup_steps), int(mu_decay_steps), bool(phi)
        self.step = 0

    def mu(self, step: int) -> float:
        return chord_mu(step, self.mu_warmup_steps, self.mu_decay_steps, self.mu_peak, self.mu_valley)

    def update(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput:
        lam = 1.0 - self.mu(self.step)
        self.step += 1
        return GateOutput(lam, lam)

    def token_weights(self, inputs: TokenInputs) -> tuple[Tensor | None, Tensor | None]:
        return None, (chord_phi(inputs.demo_logp) if self.phi else None)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state.get("step", 0))
