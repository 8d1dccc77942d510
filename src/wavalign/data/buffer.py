"""Rollout buffer: one batch of rollouts (with its rewards, advantages, lambda and reference log-probs) serves
`reuse` consecutive optimiser steps, as PPO-style multi-epoch updates need.

The DataModule repeats each prompt batch `reuse` times in a row (RepeatBatchSampler); the buffer recognises the
repeat by the batch's example ids and hands back the stored rollouts instead of sampling again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from wavalign.policy.base import Reply, SequenceBatch


@dataclass
class RolloutEntry:
    key: tuple[int, ...]
    rollouts: SequenceBatch
    demonstrations: SequenceBatch
    advantages: Tensor  # (N,)
    lam: float
    replies: list[Reply] = field(default_factory=list)
    ref_logp: Tensor | None = None
    old_logp: Tensor | None = None  # set at the first update, when pi_old == pi_theta exactly
    extras: dict[str, Any] = field(default_factory=dict)
    uses: int = 0


class RolloutBuffer:
    def __init__(self, reuse: int = 1) -> None:
        if reuse < 1:
            raise ValueError(f"reuse (ppo_epochs) must be >= 1, got {reuse}")
        self.reuse = reuse
        self.entry: RolloutEntry | None = None

    def get(self, key: tuple[int, ...]) -> RolloutEntry | None:
        """The stored entry when this batch is a repeat that still has uses left, else None (sample anew)."""
        e = self.entry
        if e is not None and e.key == key and e.uses < self.reuse:
            return e
        return None

    def put(self, entry: RolloutEntry) -> RolloutEntry:
        self.entry = entry
        return entry

    def mark_used(self, entry: RolloutEntry) -> None:
        entry.uses += 1
