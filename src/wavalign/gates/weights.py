"""How one step mixes its two terms, for every gate rule alike: L = po_scale L_PO(w_po) + sft_scale L_SFT(w_sft).

A batch lambda is the special case of a lambda per prompt group: with one lambda for the batch the scales are
(lambda, 1 - lambda) and no weights, which is exactly the paper's L = lambda L_PO + (1 - lambda) L_SFT. With a lambda
per group the scales are 1 and lambda_b (on each of the group's G rollout rows) and 1 - lambda_b (on the group's
demonstration row) become row weights inside the two losses, so for loss_type grpo

    L = (1/B) sum_b [lambda_b L_PO,b + (1 - lambda_b) L_SFT,b]

with L_PO,b the mean of the group's per-row GRPO losses and L_SFT,b its demonstration's per-token NLL. A rule's
per-token weights (CHORD's phi, SRFT's entropy weights, ...) multiply on top; a rule with sum_terms (SRFT) adds
the two terms at full scale, L = L_PO(w_po) + L_SFT(w_sft). The logged loss/po and loss/sft are then the weighted terms
(they add up to loss/total). Other loss types (dapo, dr_grpo) keep their own normaliser with the weights inside.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from wavalign.gates.base import GateRule, TokenInputs


@dataclass
class LossWeights:
    po_scale: float
    sft_scale: float
    po_tokens: Tensor | None = None  # (N, T) or (N, 1): multiplies the per-token policy-gradient loss
    sft_tokens: Tensor | None = None  # (B, T) or (B, 1): multiplies the per-token SFT loss


def _times(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a * b


def mix_weights(
    lam: float,
    group_lam: Tensor | None,
    group_size: int,
    po_tokens: Tensor | None = None,
    sft_tokens: Tensor | None = None,
) -> LossWeights:
    """The scales and weights for a batch lambda (group_lam None) or a lambda per group (group_lam of shape (B,))."""
    if group_lam is None:
        return LossWeights(lam, 1.0 - lam, po_tokens, sft_tokens)
    if group_lam.dim() != 1:
        raise ValueError(f"a gate's group_lam must have shape (B,), got {tuple(group_lam.shape)}")
    if bool(((group_lam < 0) | (group_lam > 1)).any()):
        raise ValueError(f"a gate's group_lam must lie in [0, 1], got {group_lam.tolist()}")
    rows = group_lam.repeat_interleave(group_size).unsqueeze(1)  # row i belongs to group i // G
    return LossWeights(1.0, 1.0, _times(rows, po_tokens), _times((1.0 - group_lam).unsqueeze(1), sft_tokens))


def step_weights(rule: GateRule, lam: float, group_lam: Tensor | None, group_size: int, inputs: TokenInputs) -> LossWeights:
    """The weights of one update: the entry's lambda(s) and the rule's per-token weights on the current tensors.
    A rule with sum_terms adds the two terms at full scale (its token weights carry the mix)."""
    logp = inputs.logp
    po_tokens, sft_tokens = rule.token_weights(inputs)
    if rule.sum_terms:
        if group_lam is not None:
            raise ValueError(f"gate rule {type(rule).__name__} sets sum_terms and a lambda per group: use one of them")
        return LossWeights(1.0, 1.0, po_tokens, sft_tokens)
    if group_lam is not None:
        group_lam = group_lam.to(device=logp.device, dtype=logp.dtype)
        if group_lam.numel() * group_size != logp.shape[0]:
            raise ValueError(f"group_lam has {group_lam.numel()} groups but there are {logp.shape[0]} rollout rows "
                             f"in groups of {group_size}")  # fmt: skip
    return mix_weights(lam, group_lam, group_size, po_tokens, sft_tokens)
