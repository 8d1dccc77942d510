"""The step plan: what one rollout batch trains, as data the module executes without knowing which rule made it.

The gate callback (wavalign.callbacks.gating) turns its rule's output into a `StepPlan` once per fresh rollout batch:
which terms train, at which scales, a lambda per prompt group, whether the demonstrations join their groups, and
which demonstrations the SFT term trains on. The plan is data, so it rides in the rollout buffer and its
checkpoint; what a rule computes from the current forward at every update (per-token weights, a demonstration row's
ratio) the callback supplies on request (`GateCallback.loss_weights`, `GateCallback.demo_ratio`).

How the two terms mix, for every rule alike: L = po_scale L_PO(w_po) + sft_scale L_SFT(w_sft). A batch lambda gives
scales (lambda, 1 - lambda) and no weights, the paper's L = lambda L_PO + (1 - lambda) L_SFT. A lambda per group gives
scales (1, 1), with lambda_b on each of the group's G rollout rows and 1 - lambda_b on its demonstration row as row
weights inside the two losses, so for loss_type grpo L = (1/B) sum_b [lambda_b L_PO,b + (1 - lambda_b) L_SFT,b]. A
rule whose token weights carry the mix (SRFT, ReLIFT's replay) adds the terms at full scale. A rule's per-token
weights multiply on top; the logged loss/po and loss/sft are the weighted terms (they add up to loss/total).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import Tensor

from wavalign.policy.base import SequenceBatch

SftSource = Literal["batch", "replay", "none"]


@dataclass
class LossWeights:
    """The scales and weights of one update: L = po_scale L_PO(po_weights) + sft_scale L_SFT(sft_weights)."""

    po_scale: float
    sft_scale: float
    po_weights: Tensor | None = None  # (N, T) or (N, 1): multiplies the per-token policy-gradient loss
    sft_weights: Tensor | None = None  # (B, T) or (B, 1): multiplies the per-token SFT loss


@dataclass
class StepPlan:
    """What a rollout batch trains. Built by the gate callback; executed by the module; checkpointed with the buffer.

    lam / lam_raw: the step's lambda and the batch mean of the raw gate, as logged (gate/lambda, gate/lambda_raw).
    group_lam: (B,) a lambda per prompt group of this process, or None (every group uses `lam`).
    train_po / train_sft: which terms carry gradient (a term at scale 0 is not computed with grad).
    full_scale: both terms at scale 1, the rule's token weights doing the mixing.
    demos_in_group: each demonstration is judged and joins its GRPO group as an off-policy row.
    with_entropy: the rule's token weights read per-token entropies, so the forward computes them.
    sft_source: 'batch' (this batch's demonstrations), 'replay' (`replay`, demonstrations the rule kept), 'none'.
    """

    lam: float
    lam_raw: float
    group_lam: Tensor | None = None
    train_po: bool = True
    train_sft: bool = True
    full_scale: bool = False
    demos_in_group: bool = False
    with_entropy: bool = False
    sft_source: SftSource = "batch"
    replay: SequenceBatch | None = None

    def sft_batch(self, demonstrations: SequenceBatch) -> SequenceBatch | None:
        """The batch the SFT term trains on, given this batch's own demonstrations (None: no SFT term)."""
        if self.sft_source == "none":
            return None
        return demonstrations if self.sft_source == "batch" else self.replay

    def scales(self) -> tuple[float, float]:
        """(po_scale, sft_scale): (lambda, 1 - lambda) for a batch lambda, (1, 1) with group lambdas or full scale."""
        if self.full_scale or self.group_lam is not None:
            return 1.0, 1.0
        return self.lam, 1.0 - self.lam

    def state_dict(self) -> dict[str, Any]:
        """Plain values and tensors (loadable with torch.load(weights_only=True))."""
        return {
            "lam": self.lam,
            "lam_raw": self.lam_raw,
            "group_lam": None if self.group_lam is None else self.group_lam.cpu(),
            "train_po": self.train_po,
            "train_sft": self.train_sft,
            "full_scale": self.full_scale,
            "demos_in_group": self.demos_in_group,
            "with_entropy": self.with_entropy,
            "sft_source": self.sft_source,
            "replay": None if self.replay is None else self.replay.state_dict(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: Any = "cpu") -> StepPlan:
        group_lam, replay = state.get("group_lam"), state.get("replay")
        return cls(
            lam=float(state["lam"]),
            lam_raw=float(state["lam_raw"]),
            group_lam=None if group_lam is None else group_lam.to(device),
            train_po=bool(state["train_po"]),
            train_sft=bool(state["train_sft"]),
            full_scale=bool(state["full_scale"]),
            demos_in_group=bool(state["demos_in_group"]),
            with_entropy=bool(state["with_entropy"]),
            sft_source=state["sft_source"],
            replay=None if replay is None else SequenceBatch.from_state(replay, device),
        )


def _times(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a * b


def mix_weights(
    plan: StepPlan, group_size: int, logp: Tensor, po_weights: Tensor | None = None, sft_weights: Tensor | None = None
) -> LossWeights:
    """The weights of one update: the plan's scales, its group lambdas as row weights (on the device and dtype of
    the rollouts' log-probs `logp`, rows in groups of `group_size`), times a rule's per-token weights."""
    po_scale, sft_scale = plan.scales()
    group_lam = plan.group_lam
    if group_lam is None:
        return LossWeights(po_scale, sft_scale, po_weights, sft_weights)
    if plan.full_scale:
        raise ValueError("a step plan cannot both add its terms at full scale and carry a lambda per group")
    group_lam = group_lam.to(device=logp.device, dtype=logp.dtype)
    if group_lam.numel() * group_size != logp.shape[0]:
        raise ValueError(
            f"group_lam has {group_lam.numel()} groups but there are {logp.shape[0]} rollout rows "
            f"in groups of {group_size}"
        )
    if group_lam.dim() != 1:
        raise ValueError(f"a gate's group_lam must have shape (B,), got {tuple(group_lam.shape)}")
    if bool(((group_lam < 0) | (group_lam > 1)).any()):
        raise ValueError(f"a gate's group_lam must lie in [0, 1], got {group_lam.tolist()}")
    rows = group_lam.repeat_interleave(group_size).unsqueeze(1)  # row i belongs to group i // G
    return LossWeights(1.0, 1.0, _times(rows, po_weights), _times((1.0 - group_lam).unsqueeze(1), sft_weights))
