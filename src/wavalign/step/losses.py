"""The losses of the recipe as pure functions of tensors (method.md), so each can be checked by hand.

Shapes: rows N = prompts x group size, positions T. Log-probs are per token of the sampled/teacher token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

ADV_EPS = 1e-4
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo")


def group_advantages(
    rewards: Tensor, reliable: Tensor | None = None, scale: bool = True, eps: float = ADV_EPS
) -> Tensor:
    """A_i = (R_i - mean_j R_j) / (std_pop(R) + eps) within each prompt's group (rows of `rewards`, shape (B, G)).

    Unreliable scores carry no information: they get advantage 0 and are left out of their group's mean and std.
    A group with fewer than two reliable scores, or with equal scores, gives all zeros (never NaN).
    """
    rewards = rewards.to(torch.promote_types(rewards.dtype, torch.float32))
    w = torch.ones_like(rewards) if reliable is None else reliable.to(rewards.dtype)
    n = w.sum(dim=1, keepdim=True)
    mean = (rewards * w).sum(dim=1, keepdim=True) / n.clamp(min=1)
    var = (((rewards - mean) ** 2) * w).sum(dim=1, keepdim=True) / n.clamp(min=1)
    centred = (rewards - mean) * w
    adv = centred / (var.sqrt() + eps) if scale else centred
    return torch.where(n >= 2, adv, torch.zeros_like(adv))


def k3_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi_theta || pi_ref): exp(r) - r - 1 with r = log pi_ref - log pi_theta (>= 0)."""
    r = ref_logp - logp
    return torch.exp(r) - r - 1.0


def masked_mean_per_row(values: Tensor, mask: Tensor) -> Tensor:
    """sum_t m v / sum_t m per row; a row with an empty mask gives 0."""
    return (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def aggregate(per_token: Tensor, mask: Tensor, loss_type: str = "grpo", max_len: int | None = None) -> Tensor:
    """Reduce a per-token loss to a scalar as the named GRPO variant does.

    grpo: mean over rows of the per-row masked mean (method.md); dr_grpo: sum / (rows x max_len);
    dapo / bnpo: mean over every masked token of the batch.
    """
    if loss_type == "grpo":
        return masked_mean_per_row(per_token, mask).mean()
    if loss_type == "dr_grpo":
        return (per_token * mask).sum() / (mask.shape[0] * (max_len or mask.shape[1]))
    if loss_type in ("dapo", "bnpo"):
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")


@dataclass
class OffPolicyRows:
    """Rows that join the GRPO groups from another policy (LUFFY's demonstrations): their per-token 'ratio' is a
    (shaped) probability under the current policy, with no pi_old and no clip, so their loss is -A ratio; they are
    averaged with the rollout rows as rows of the same batch. Shapes: ratio, mask (B, T'), advantages (B,)."""

    ratio: Tensor
    advantages: Tensor
    mask: Tensor


def _pad_positions(x: Tensor, length: int) -> Tensor:
    return F.pad(x, (0, length - x.shape[1]))


@dataclass
class PolicyLossOutput:
    loss: Tensor
    kl: Tensor  # masked mean k3 KL (0 when beta = 0 and no reference is given)
    clip_ratio: Tensor  # fraction of masked tokens whose ratio was clipped


def policy_loss(
    logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    old_logp: Tensor | None = None,
    ref_logp: Tensor | None = None,
    beta: float = 0.0,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "grpo",
    token_weights: Tensor | None = None,
    off_policy: OffPolicyRows | None = None,
) -> PolicyLossOutput:
    """GRPO loss l_it = -(min(rho A, clip(rho, 1-eps, 1+eps_high) A) - beta D_it), aggregated over `mask`.

    rho = pi_theta / pi_old with pi_old detached (= 1 in value on the first update, gradient still flows);
    advantages has shape (N,) and is broadcast over positions, or (N, T) per token (po_tokens 'split'). Pass mask = text mask for WavAlign, completion mask
    for the full-token baseline. token_weights (N, T) or (N, 1), if given, multiply l_it before aggregation (a hybrid
    rule's per-group lambda or per-token weight); the normaliser stays the mask's. off_policy rows (a rule's
    demonstrations in the group) add -A ratio per token, aggregated together with the rollout rows; the logged KL
    and clip ratio stay the rollouts'.
    """
    old = logp.detach() if old_logp is None else old_logp
    ratio = torch.exp(logp - old)
    adv = advantages.to(logp.dtype)
    adv = adv.unsqueeze(1) if adv.dim() == 1 else adv
    eps_high = epsilon if epsilon_high is None else epsilon_high
    clipped_ratio = torch.clamp(ratio, 1.0 - epsilon, 1.0 + eps_high)
    surrogate = torch.minimum(ratio * adv, clipped_ratio * adv)
    per_token = -surrogate
    if ref_logp is not None and beta != 0.0:
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + beta * kl
    else:
        kl = torch.zeros_like(logp)
    if token_weights is not None:
        per_token = per_token * token_weights.to(per_token.dtype)
    with torch.no_grad():
        was_clipped = ((ratio * adv) != surrogate).to(logp.dtype)
        n = mask.sum().clamp(min=1.0)
        clip_ratio = (was_clipped * mask).sum() / n
        kl_mean = (kl.detach() * mask).sum() / n
    if off_policy is not None:
        off = -off_policy.advantages.to(logp.dtype).unsqueeze(1) * off_policy.ratio
        t = max(per_token.shape[1], off.shape[1])
        per_token = torch.cat([_pad_positions(per_token, t), _pad_positions(off, t)])
        mask = torch.cat([_pad_positions(mask, t), _pad_positions(off_policy.mask.to(mask.dtype), t)])
    return PolicyLossOutput(aggregate(per_token, mask, loss_type), kl_mean, clip_ratio)


def sft_loss(logp: Tensor, mask: Tensor, token_weights: Tensor | None = None) -> Tensor:
    """Teacher-forced NLL of the demonstration: mean over rows of sum_t v_t (-log pi) / sum_t v_t.

    token_weights (B, T) or (B, 1), if given, multiply -log pi per token (e.g. CHORD's phi, a per-group 1 - lambda);
    the normaliser stays sum_t v_t."""
    nll = -logp if token_weights is None else -logp * token_weights.to(logp.dtype)
    return masked_mean_per_row(nll, mask).mean()


def dpo_loss(
    chosen_logp: Tensor,
    rejected_logp: Tensor,
    ref_chosen_logp: Tensor,
    ref_rejected_logp: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """Text-only DPO: l(y) = sum_t m_text log pi; L = -log sigmoid(beta [(l_th(y_w) - l_ref(y_w)) - (l_th(y_l) - l_ref(y_l))])."""
    chosen = ((chosen_logp - ref_chosen_logp) * chosen_mask).sum(dim=1)
    rejected = ((rejected_logp - ref_rejected_logp) * rejected_mask).sum(dim=1)
    return -F.logsigmoid(beta * (chosen - rejected)).mean()
