"""Rollout buffer: one batch of rollouts (with its rewards, advantages, lambda and reference log-probs) serves
`reuse` consecutive optimiser steps, as PPO-style multi-epoch updates need.

The DataModule repeats each prompt batch `reuse` times in a row (RepeatBatchSampler); the buffer recognises the
repeat by the batch's example ids and hands back the stored rollouts instead of sampling again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from wavalign.policy.masks import ModalityMasks
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
    group_lam: Tensor | None = None  # (B,) a hybrid rule's lambda per prompt group; None: `lam` for every group
    part_advantages: Tensor | None = None  # (N, 2) semantic / acoustic advantages, for po_tokens 'split'
    demo_advantages: Tensor | None = None  # (B,) each demonstration's advantage in its group, for demo_in_group rules
    sft_demonstrations: SequenceBatch | None = None  # what the SFT term trains on when a rule replaces `demonstrations`
    sft_skip: bool = False  # a rule turned this batch's SFT term off


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

    # ---- checkpoint: a run stopped between two PPO epochs resumes on the same rollouts ------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and lists only (loadable with torch.load(weights_only=True)); analysis extras are dropped."""
        e = self.entry
        if e is None or e.uses >= self.reuse:
            return {"entry": None}
        return {
            "entry": {
                "key": list(e.key), "rollouts": _batch_state(e.rollouts), "demonstrations": _batch_state(e.demonstrations),
                "advantages": e.advantages.cpu(), "lam": e.lam, "replies": [[r.text, list(r.speech_codes)] for r in e.replies],
                "ref_logp": None if e.ref_logp is None else e.ref_logp.cpu(),
                "old_logp": None if e.old_logp is None else e.old_logp.cpu(), "uses": e.uses,
                "group_lam": None if e.group_lam is None else e.group_lam.cpu(),
                "part_advantages": None if e.part_advantages is None else e.part_advantages.cpu(),
                "demo_advantages": None if e.demo_advantages is None else e.demo_advantages.cpu(),
                "sft_demonstrations": None if e.sft_demonstrations is None else _batch_state(e.sft_demonstrations),
                "sft_skip": e.sft_skip,
            }  # fmt: skip
        }

    def load_state_dict(self, state: dict[str, Any], device: Any = "cpu") -> None:
        s = state.get("entry")
        if s is None:
            self.entry = None
            return
        opt = lambda t: None if t is None else t.to(device)  # noqa: E731
        self.entry = RolloutEntry(
            key=tuple(s["key"]), rollouts=_batch_from_state(s["rollouts"], device),
            demonstrations=_batch_from_state(s["demonstrations"], device), advantages=s["advantages"].to(device),
            lam=float(s["lam"]), replies=[Reply(text, codes) for text, codes in s["replies"]],
            ref_logp=opt(s["ref_logp"]), old_logp=opt(s["old_logp"]), uses=int(s["uses"]),
            group_lam=opt(s.get("group_lam")), part_advantages=opt(s.get("part_advantages")),
            demo_advantages=opt(s.get("demo_advantages")), sft_skip=bool(s.get("sft_skip", False)),
            sft_demonstrations=None if s.get("sft_demonstrations") is None else _batch_from_state(s["sft_demonstrations"], device),
        )  # fmt: skip


def _batch_state(b: SequenceBatch) -> dict[str, Tensor]:
    m = b.masks
    return {"prompt_ids": b.prompt_ids, "prompt_mask": b.prompt_mask, "completion_ids": b.completion_ids,
            "completion": m.completion, "text": m.text, "speech": m.speech}  # fmt: skip


def _batch_from_state(s: dict[str, Tensor], device: Any) -> SequenceBatch:
    masks = ModalityMasks(s["completion"], s["text"], s["speech"])
    return SequenceBatch(s["prompt_ids"], s["prompt_mask"], s["completion_ids"], masks).to(device)
