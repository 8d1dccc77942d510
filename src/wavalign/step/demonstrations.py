"""Demonstrations as members of their GRPO group (for rules with demo_in_group, e.g. LUFFY): each prompt's
demonstration is judged like a rollout, its reward joins the group's mean and std, and it gets an advantage of its
own; the objective then trains it as an off-policy row (objectives.OffPolicyRows)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from wavalign.audio.codec import SpeechCodec
from wavalign.data.schema import DialogueExample
from wavalign.judges.base import Judge
from wavalign.policy.base import Reply
from wavalign.step.losses import group_advantages
from wavalign.step.scoring import ScoredGroups, build_requests, score_groups


def score_demonstrations(
    judge: Judge, examples: Sequence[DialogueExample], replies: Sequence[Reply], codec: SpeechCodec | None
) -> ScoredGroups:
    """The judge's scores of the demonstrations (decoded as the policy emits them), one per prompt: (B, 1)."""
    return score_groups(judge, build_requests(examples, replies, 1, codec), 1)


def advantages_with_demos(scored: ScoredGroups, demos: ScoredGroups, scale: bool = True) -> tuple[Tensor, Tensor]:
    """Group advantages over each group's G rollouts plus its demonstration (G + 1 members): the rollouts' (N,) and
    the demonstrations' (B,)."""
    rewards = torch.cat([scored.rewards, demos.rewards], dim=1)
    reliable = torch.cat([scored.reliable, demos.reliable], dim=1)
    adv = group_advantages(rewards, reliable, scale=scale)
    return adv[:, :-1].flatten(), adv[:, -1]
