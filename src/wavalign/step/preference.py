"""The preference term of a step: GRPO on the chosen tokens (or online DPO), with a rule's weights and off-policy rows.

The module hands it a rollout record and the current log-probs; everything the loss depends on (advantages, old and
reference log-probs, masks) comes from the record, and the run's settings from `PreferenceObjective`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from wavalign.policy.base import SequenceBatch
from wavalign.step.losses import LOSS_TYPES, OffPolicyRows, PolicyLossOutput, dpo_loss, policy_loss
from wavalign.step.rollouts import RolloutEntry
from wavalign.step.split_po import split_token_advantages

OBJECTIVES = ("grpo", "dpo")
PO_TOKENS = ("text", "speech", "all", "split")


class PreferenceObjective:
    """The run's preference-optimisation settings and the loss they define (WavAlignModule's arguments of the same
    names; the module documents each)."""

    def __init__(
        self,
        group_size: int,
        objective: str = "grpo",
        po_tokens: str = "text",
        loss_type: str = "grpo",
        beta: float = 0.0,
        epsilon: float = 0.2,
        epsilon_high: float | None = None,
        dpo_beta: float = 0.1,
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"model.objective must be one of {OBJECTIVES}, got {objective!r}")
        if po_tokens not in PO_TOKENS:
            raise ValueError(f"model.po_tokens must be 'text', 'speech', 'all' or 'split', got {po_tokens!r}")
        if po_tokens == "split" and objective != "grpo":
            raise ValueError(
                "model.po_tokens 'split' gives text and speech tokens different advantages: use objective 'grpo'"
            )
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"model.loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
        self.group_size, self.objective, self.po_tokens, self.loss_type = group_size, objective, po_tokens, loss_type
        self.beta, self.epsilon, self.epsilon_high, self.dpo_beta = beta, epsilon, epsilon_high, dpo_beta

    @property
    def needs_reference(self) -> bool:
        """A KL penalty or DPO reads the frozen reference's log-probs."""
        return self.beta > 0 or self.objective == "dpo"

    def loss(
        self,
        entry: RolloutEntry,
        logp: Tensor,
        token_weights: Tensor | None,
        demo_logp: Tensor | None,
        demo_ratio: Callable[[Tensor], Tensor],
        reference: Callable[[SequenceBatch], Tensor],
        rule_name: str,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The preference loss of the entry's rollouts given their current log-probs, and what it logs.

        token_weights: a rule's per-group lambda or per-token weights on the GRPO per-token loss; demo_ratio: the
        rule's ratio for demonstrations that joined their groups; reference: the frozen reference's log-probs of a
        batch (DPO reads them when the entry has none); rule_name: for error messages."""
        rollouts = entry.rollouts
        off = None
        if entry.advantages.demonstrations is not None:
            own = demo_logp is not None and entry.plan.sft_source == "batch"
            if self.objective == "dpo" or self.po_tokens == "split" or not own:
                raise ValueError(
                    f"gate rule {rule_name} adds demonstrations to the group: it needs objective 'grpo', po_tokens "
                    "'text', 'speech' or 'all', and the batch's own demonstrations"
                )
            demo_mask = entry.demonstrations.masks.select(self.po_tokens)
            off = OffPolicyRows(demo_ratio(demo_logp), entry.advantages.demonstrations, demo_mask)
        if entry.old_logp is None:
            entry.old_logp = logp.detach()
        advantages = None
        if self.po_tokens == "split":
            advantages, mask = split_token_advantages(entry.advantages.parts, rollouts.masks)
        else:
            mask = rollouts.masks.select(self.po_tokens)
        if self.objective == "dpo":
            if token_weights is not None:
                raise ValueError(
                    f"objective 'dpo' takes no per-group or per-token weights; gate rule {rule_name} sets them: use "
                    "objective 'grpo'"
                )
            return self.dpo(entry, logp, mask, reference), {}
        out = self.grpo(entry, logp, mask, token_weights, advantages, off)
        return out.loss, {"loss/kl": out.kl, "rollout/clip_ratio": out.clip_ratio}

    def grpo(
        self,
        entry: RolloutEntry,
        logp: Tensor,
        mask: Tensor,
        token_weights: Tensor | None = None,
        advantages: Tensor | None = None,
        off_policy: OffPolicyRows | None = None,
    ) -> PolicyLossOutput:
        """The GRPO objective on the entry's rollouts over the tokens in `mask` (advantages: per-token ones for
        po_tokens 'split'; default the entry's per-rollout ones)."""
        return policy_loss(
            logp,
            entry.advantages.rollouts if advantages is None else advantages,
            mask,
            old_logp=entry.old_logp,
            ref_logp=entry.ref_logp,
            beta=self.beta,
            epsilon=self.epsilon,
            epsilon_high=self.epsilon_high,
            loss_type=self.loss_type,
            token_weights=token_weights,
            off_policy=off_policy,
        )

    def dpo(
        self, entry: RolloutEntry, logp: Tensor, mask: Tensor, reference: Callable[[SequenceBatch], Tensor]
    ) -> Tensor:
        """Online DPO: the best and worst scored sample of each group; groups without a spread are skipped."""
        g = self.group_size
        adv = entry.advantages.rollouts.view(-1, g)
        best = adv.argmax(dim=1) + torch.arange(adv.shape[0], device=adv.device) * g
        worst = adv.argmin(dim=1) + torch.arange(adv.shape[0], device=adv.device) * g
        keep = (adv.max(dim=1).values - adv.min(dim=1).values) > 0
        if not bool(keep.any()):
            return logp.sum() * 0.0
        best, worst = best[keep], worst[keep]
        if entry.ref_logp is None:
            entry.ref_logp = reference(entry.rollouts)
        ref = entry.ref_logp
        return dpo_loss(logp[best], logp[worst], ref[best], ref[worst], mask[best], mask[worst], self.dpo_beta)
