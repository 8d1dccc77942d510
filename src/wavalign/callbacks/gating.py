"""GateCallback: owns the gate rule for a run, hands it to the module, logs it, and checkpoints its state."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch import Tensor

from wavalign.gates import DynamicGate, GateOutput, GateRule


class GateCallback(pl.Callback):
    """The module asks `step(rewards, reliable)` once per fresh rollout batch; lambda and the rule's EMA state are
    saved in every checkpoint and restored on resume."""

    def __init__(self, rule: GateRule | None = None) -> None:
        self.rule = rule if rule is not None else DynamicGate()
        self.last: GateOutput | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.gate = self

    def step(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput:
        self.last = self.rule.update(rewards, reliable)
        return self.last

    def state_dict(self) -> dict[str, Any]:
        last = None if self.last is None else {"lam": self.last.lam, "lam_raw": self.last.lam_raw}
        return {"rule": type(self.rule).__name__, "rule_state": self.rule.state_dict(), "last": last}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("rule")
        if saved is not None and saved != type(self.rule).__name__:
            raise ValueError(f"checkpoint holds the state of gate rule {saved}, this run uses {type(self.rule).__name__}")
        self.rule.load_state_dict(state_dict.get("rule_state", {}))
        last = state_dict.get("last")
        self.last = None if last is None else GateOutput(last["lam"], last["lam_raw"])
