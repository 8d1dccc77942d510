"""Fixed mixes: the paper's constant-lambda baselines (lambda = 0.5, 0.7, 0.8), SFT only and RL only."""

from __future__ import annotations

from torch import Tensor

from wavalign.gates.base import GateOutput, GateRule


class FixedGate(GateRule):
    """A constant mix, lambda = lam (the paper's fixed baselines: 0.5, 0.7, 0.8).

    Args:
        lam: the constant lambda in [0, 1]: the preference term's share of every step.
    """

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
