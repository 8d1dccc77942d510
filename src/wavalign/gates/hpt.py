"""HPT, Hybrid Post-Training (Lv et al., "Towards a Unified View of Large Language Model Post-Training",
arXiv 2509.04419; public code TsinghuaC3I/Unify-Post-Training, hpt/verl/verl/mix_src/mix_trainer.py,
`select_on_off_ada_balance` with unify_strategy 'switch').

Per prompt: count the group's correct rollouts; if at most `switch_gate` are correct the prompt's rollouts are
dropped and the step trains SFT on its demonstration, otherwise the prompt trains pure RL on its rollouts. Here that is
a lambda per group: lambda_b = 0 (SFT) or 1 (RL).

Adaptations, said plainly: the upstream reward is a verifier's 0/1 (`success_value`); a judge's score counts as
correct here when it is reliable and >= `success_threshold`. Upstream averages the SFT loss over the SFT prompts and
the policy loss over the RL rows separately and adds them (sft_loss_coef 1.0); here each group is one 1/B share of
the step's loss (hybrid/weights.py), so a group's weight does not depend on how many other groups switched. The
upstream `switch_gate_off` middle band (default equal to switch_gate, i.e. unused) is left out.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wavalign.gates.base import GateOutput, GateRule


class HPTGate(GateRule):
    """lambda_b = 0 when #{correct rollouts of group b} <= switch_gate, else 1 (upstream default switch_gate = 0:
    SFT only on prompts the policy never solves).

    Args:
        switch_gate: a group with at most this many correct rollouts trains SFT on its demonstration, else RL.
        success_threshold: the judge score (1-5) from which a reliable rollout counts as correct.
    """

    def __init__(self, switch_gate: int = 0, success_threshold: float = 4.0) -> None:
        if switch_gate < 0:
            raise ValueError(f"HPTGate switch_gate must be >= 0, got {switch_gate}")
        self.switch_gate, self.success_threshold = int(switch_gate), float(success_threshold)

    def correct_counts(self, rewards: Tensor, reliable: Tensor | None = None) -> Tensor:
        """The number of correct rollouts per group, shape (B,); an unreliable score never counts as correct."""
        correct = rewards >= self.success_threshold
        if reliable is not None:
            correct = correct & reliable.bool()
        return correct.sum(dim=1)

    def update(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput:
        group_lam = (self.correct_counts(rewards, reliable) > self.switch_gate).to(device="cpu", dtype=torch.float64)
        lam = float(group_lam.mean())
        return GateOutput(lam, lam, group_lam)
