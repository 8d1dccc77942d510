"""The rollout record of one training batch, and the buffer that serves it to `reuse` consecutive optimiser steps.

PPO-style multi-epoch updates reuse one batch of rollouts: the DataModule repeats each prompt batch `reuse` times in a
row (RepeatBatchSampler), and the buffer recognises the repeat by the batch's example ids and hands back the stored
record instead of sampling again. The record is typed: what every step needs, the plan the gate made for it, the
advantages by kind, and (not checkpointed) the judge's requests and scores for analysis callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from wavalign.judges.base import JudgeRequest, JudgeScore
from wavalign.policy.base import Reply, SequenceBatch
from wavalign.step.plan import StepPlan


def _cpu(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.cpu()


def _on(t: Tensor | None, device: Any) -> Tensor | None:
    return None if t is None else t.to(device)


@dataclass
class Advantages:
    """The batch's advantages: per rollout (N,), per rollout and judge part (N, 2: semantic, acoustic) for po_tokens
    'split', and each demonstration's in its group (B,) when the plan puts demonstrations in their groups."""

    rollouts: Tensor
    parts: Tensor | None = None
    demonstrations: Tensor | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rollouts": self.rollouts.cpu(), "parts": _cpu(self.parts), "demonstrations": _cpu(self.demonstrations)}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: Any = "cpu") -> Advantages:
        return cls(state["rollouts"].to(device), _on(state["parts"], device), _on(state["demonstrations"], device))


@dataclass
class JudgedRollouts:
    """What the judge saw and said for this batch, kept so analysis callbacks (judge consistency, run guards,
    rollout audio) need not decode or judge again; global_reliable holds every process's flags (B_global, G)."""

    requests: list[JudgeRequest]
    scores: list[JudgeScore]
    global_reliable: Tensor


@dataclass
class RolloutEntry:
    """One rollout batch: the sampled rows grouped per prompt, the prompts' demonstrations, the decoded replies, the
    advantages, the gate's plan, reference and old log-probs, and how many updates have used it."""

    key: tuple[int, ...]
    rollouts: SequenceBatch
    demonstrations: SequenceBatch
    advantages: Advantages
    plan: StepPlan
    replies: list[Reply] = field(default_factory=list)
    ref_logp: Tensor | None = None
    old_logp: Tensor | None = None  # set at the first update, when pi_old == pi_theta exactly
    judged: JudgedRollouts | None = None  # not checkpointed
    uses: int = 0

    @property
    def lam(self) -> float:
        return self.plan.lam

    @property
    def sft_batch(self) -> SequenceBatch | None:
        """What this batch's SFT term trains on (None: no SFT term)."""
        return self.plan.sft_batch(self.demonstrations)

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and lists only (loadable with torch.load(weights_only=True)); the judged record is dropped."""
        return {
            "key": list(self.key),
            "rollouts": self.rollouts.state_dict(),
            "demonstrations": self.demonstrations.state_dict(),
            "advantages": self.advantages.state_dict(),
            "plan": self.plan.state_dict(),
            "replies": [[r.text, list(r.speech_codes)] for r in self.replies],
            "ref_logp": _cpu(self.ref_logp),
            "old_logp": _cpu(self.old_logp),
            "uses": self.uses,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any], device: Any = "cpu") -> RolloutEntry:
        return cls(
            key=tuple(s["key"]),
            rollouts=SequenceBatch.from_state(s["rollouts"], device),
            demonstrations=SequenceBatch.from_state(s["demonstrations"], device),
            advantages=Advantages.from_state(s["advantages"], device),
            plan=StepPlan.from_state(s["plan"], device),
            replies=[Reply(text, codes) for text, codes in s["replies"]],
            ref_logp=_on(s["ref_logp"], device),
            old_logp=_on(s["old_logp"], device),
            uses=int(s["uses"]),
        )


class RolloutBuffer:
    """Holds the latest rollout batch for `reuse` updates (PPO epochs)."""

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
        e = self.entry
        if e is None or e.uses >= self.reuse:
            return {"entry": None}
        return {"entry": e.state_dict()}

    def load_state_dict(self, state: dict[str, Any], device: Any = "cpu") -> None:
        s = state.get("entry")
        if s is not None and "plan" not in s:
            raise ValueError(
                "the checkpoint's rollout buffer was written before step plans existed (a run stopped "
                "between two PPO epochs): resume from a checkpoint written at a batch boundary"
            )
        self.entry = None if s is None else RolloutEntry.from_state(s, device)
