"""po_tokens 'split': text tokens learn from the judge's semantic part, speech tokens from its acoustic part.

Why: the paper gives the text tokens the whole score's advantage and keeps speech tokens on SFT; with a split judge
(judges/combined.py WeightedJudge, names [semantic, acoustic]) a researcher can instead test whether speech tokens
learn from an acoustic reward without collapsing. Each part gets its own group advantage (same normalisation as the
total's); a rollout's text tokens carry its semantic advantage and its speech tokens its acoustic one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wavalign.judges.base import MIN_SCORE
from wavalign.policy.masks import ModalityMasks
from wavalign.step.losses import group_advantages
from wavalign.step.scoring import ScoredGroups

SPLIT_PARTS = ("semantic", "acoustic")  # (text tokens' part, speech tokens' part)


def part_rewards(scored: ScoredGroups, part: str, group_size: int) -> tuple[Tensor, Tensor]:
    """One named part of every score as (B, G) rewards and reliability; a score without the part is unreliable.

    Raises ValueError when no score of the batch has the part though some are reliable: the judge gives no parts."""
    present = torch.tensor([part in s.parts for s in scored.scores], dtype=torch.bool)
    if not bool(present.any()) and bool(scored.reliable.any()):
        seen = sorted({k for s in scored.scores for k in s.parts})
        raise ValueError(
            f"model.po_tokens 'split' needs a judge whose scores have the parts {list(SPLIT_PARTS)}, e.g. a "
            f"WeightedJudge with names [semantic, acoustic] (configs/ablations/world_split_judge.yaml); this judge "
            f"gave {'parts ' + str(seen) if seen else 'no parts'}"
        )
    rewards = torch.tensor([s.parts.get(part, MIN_SCORE) for s in scored.scores], dtype=torch.float64)
    reliable = scored.reliable.flatten() & present
    return rewards.view(-1, group_size), reliable.view(-1, group_size)


def split_advantages(scored: ScoredGroups, group_size: int, scale: bool = True) -> Tensor:
    """(N, 2): each rollout's group advantage on the semantic part and on the acoustic part."""
    cols = [group_advantages(*part_rewards(scored, part, group_size), scale=scale).flatten() for part in SPLIT_PARTS]
    return torch.stack(cols, dim=1)


def split_token_advantages(part_advantages: Tensor, masks: ModalityMasks) -> tuple[Tensor, Tensor]:
    """Per-token advantages (N, T) = text A_semantic + speech A_acoustic, and the mask they train (text + speech)."""
    adv = part_advantages.to(masks.text.dtype)
    per_token = masks.text * adv[:, :1] + masks.speech * adv[:, 1:]
    return per_token, masks.text + masks.speech
