"""GateCallback: owns the run's gate rule and turns its output into the step plan the module executes.

The module never reads the rule: once per fresh rollout batch it hands the callback the global batch's rewards and
this batch's demonstrations and gets a `StepPlan` back (which terms train, their scales, per-group lambda, what
happens to the demonstrations); at every update it asks for the loss weights the rule computes from the current
tensors. lambda and the rule's state are saved in every checkpoint and restored on resume.
"""

from __future__ import annotations

from typing import Any, Callable

import lightning.pytorch as pl
from torch import Tensor

from wavalign.gates.base import GateOutput, GateRule, TokenInputs
from wavalign.gates.dynamic import DynamicGate
from wavalign.policy.base import SequenceBatch
from wavalign.runtime.distributed import GlobalGroups
from wavalign.runtime.sharding import every_forward_is_collective
from wavalign.step.plan import LossWeights, StepPlan, mix_weights


class GateCallback(pl.Callback):
    """The gate of the method: a rule maps each batch's rewards to the SFT/RL mix.

    Args:
        rule: the gate rule (`wavalign.gates`): the paper's `DynamicGate` (default), a fixed mix (`FixedGate`,
            `SFTOnly`, `RLOnly`), a hybrid rule (`HPTGate`, `CHORDGate`, `SRFTGate`, `LUFFYGate`, `ReLIFTGate`) or
            your own `GateRule` subclass.
    """

    def __init__(self, rule: GateRule | None = None) -> None:
        self.rule = rule if rule is not None else DynamicGate()
        self.last: GateOutput | None = None
        self.stage: str | None = None  # the trainer stage it was set up for (None: used directly, as in tests)

    @property
    def rule_name(self) -> str:
        return type(self.rule).__name__

    @property
    def pure_sft(self) -> bool:
        """lambda is 0 whatever the rewards: a step need not sample (the module may then run plain SFT steps)."""
        return self.rule.fixed_lambda == 0.0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.stage = stage
        if stage == "fit" and not self.rule.even_across_processes and every_forward_is_collective(trainer):
            raise ValueError(
                f"gate.rule {self.rule_name} keeps per-process state that adds its SFT term at "
                "different steps on different processes, which would hang sharded weights (FSDP2 or "
                "DeepSpeed ZeRO-3); run it under DDP (configs/strategies/ddp.yaml) or one process"
            )
        pl_module.gate = self

    # ---- what the module asks ----------------------------------------------------------------------------------
    def plan(
        self, groups: GlobalGroups, demonstrations: SequenceBatch, make_batch: Callable[..., SequenceBatch]
    ) -> StepPlan:
        """The plan of a fresh rollout batch: the rule sees every process's rewards (`groups`, gathered); a lambda
        per group comes back as this process's groups; the rule then picks what the SFT term trains on."""
        out = self.rule.update(groups.rewards, groups.reliable)
        self.last = out
        group_lam = None if out.group_lam is None else groups.mine(out.group_lam)
        rule = self.rule
        both = rule.sum_terms or rule.demo_in_group or 0.0 < out.lam < 1.0  # both terms in one joint forward
        sft = rule.sft_demonstrations(demonstrations, make_batch)  # a rule may replay others, or none
        source = "none" if sft is None else "batch" if sft is demonstrations else "replay"
        return StepPlan(
            lam=out.lam,
            lam_raw=out.lam_raw,
            group_lam=group_lam,
            train_po=both or out.lam > 0,
            train_sft=both or out.lam < 1,
            full_scale=rule.sum_terms,
            demos_in_group=rule.demo_in_group,
            with_entropy=rule.needs_entropy,
            sft_source=source,
            replay=sft.to(demonstrations.prompt_ids.device) if source == "replay" else None,
        )

    def loss_weights(self, plan: StepPlan, group_size: int, inputs: TokenInputs) -> LossWeights:
        """The scales and weights of one update: the plan's lambdas and the rule's token weights, computed from the
        current tensors at every update (PPO epochs included)."""
        po_weights, sft_weights = self.rule.token_weights(inputs)
        return mix_weights(plan, group_size, inputs.logp, po_weights, sft_weights)

    def demo_ratio(self, demo_logp: Tensor) -> Tensor:
        """The per-token ratio of a demonstration row in its group (plans with demos_in_group)."""
        return self.rule.demo_ratio(demo_logp)

    # ---- checkpoint ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        last = None if self.last is None else {"lam": self.last.lam, "lam_raw": self.last.lam_raw}
        return {"rule": self.rule_name, "rule_state": self.rule.state_dict(), "last": last}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.stage not in (None, "fit"):
            return  # only training plans steps: another stage's checkpoint (a warm start) restores nothing here
        saved = state_dict.get("rule")
        if saved is not None and saved != self.rule_name:
            raise ValueError(f"checkpoint holds the state of gate rule {saved}, this run uses {self.rule_name}")
        self.rule.load_state_dict(state_dict.get("rule_state", {}))
        last = state_dict.get("last")
        self.last = None if last is None else GateOutput(last["lam"], last["lam_raw"])
