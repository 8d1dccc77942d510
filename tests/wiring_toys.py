"""Judges and helpers for the module's wiring tests: scores that depend on the prompt AND the reply, so a row paired
with the wrong prompt, or rewards read in the wrong order, give different numbers than the test computes by hand."""

from __future__ import annotations

import zlib
from typing import Any, Callable, Sequence

import torch

from wavalign.callbacks.gating import GateCallback
from wavalign.data.schema import DialogueExample
from wavalign.gates import FixedGate, GateRule
from wavalign.judges.base import Judge, JudgeRequest, JudgeScore
from wavalign.module import WavAlignModule
from wavalign.policy.base import SamplingConfig, SpeechPolicy

GROUP = 4


def keyed_score(question: str, reply_text: str) -> float:
    """A continuous score in [1, 5] that is a fixed function of (question, reply): no ties by accident, and a reply
    judged against another prompt's question scores differently."""
    return 1.0 + (zlib.crc32(f"{question}|{reply_text}".encode()) % 4001) / 1000.0


class KeyedJudge(Judge):
    """Scores each reply against its own request's question (see keyed_score)."""

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        return [JudgeScore(keyed_score(r.question, r.reply_text)) for r in requests]


class PartlyFailingJudge(KeyedJudge):
    """Like KeyedJudge, but the calls at the given batch positions fail with the given (differing) fallback scores,
    as HttpJudge's fallbacks do when a call is lost."""

    def __init__(self, fallbacks: dict[int, float]) -> None:
        self.fallbacks = fallbacks

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        out = super().score(requests)
        for i, fallback in self.fallbacks.items():
            out[i] = JudgeScore(fallback, reliable=False)
        return out


def wiring_examples() -> list[DialogueExample]:
    """Two prompts of different lengths and contents, so their rollout rows can be told apart."""
    return [
        DialogueExample(
            messages=[{"role": "user", "content": "<|audio|>"}],
            prompt_speech=[speech],
            target_text=f"{a} plus {b} is {c}",
            target_speech=[5, 6, 7, 8, 9],
            question_text=f"what is {a} plus {b}",
            reference_answer=c,
        )
        for (a, b, c), speech in (
            (("one", "two", "three"), [1, 2, 3, 4]),
            (("two", "two", "four"), [9, 8, 7, 6, 5, 4, 3]),
        )
    ]


def make_module(
    policy: SpeechPolicy, rule: GateRule | None = None, judge: Judge | None = None, lr: float = 0.05, **kwargs: Any
) -> tuple[WavAlignModule, dict[str, float]]:
    """A module on `policy` with SGD, a gate, reference set up when needed, and its logged values captured."""
    module = WavAlignModule(
        policy,
        judge or KeyedJudge(),
        group_size=GROUP,
        sampling=SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=16),
        optimizer=lambda p: torch.optim.SGD(p, lr=lr),
        **kwargs,
    )
    GateCallback(rule or FixedGate(1.0)).setup(None, module, "fit")  # type: ignore[arg-type]
    module.setup("fit")
    logged: dict[str, float] = {}

    def log_dict(values: dict[str, Any], **_: Any) -> None:
        logged.update({k: float(torch.as_tensor(v).detach()) for k, v in values.items()})

    module.log_dict = log_dict  # type: ignore[method-assign]
    return module, logged


def hand_rewards(module: WavAlignModule, examples: Sequence[DialogueExample]) -> torch.Tensor:
    """The (B, G) rewards the last step should have seen, recomputed here: row i belongs to prompt i // G."""
    replies = module.policy.decode(module.last_entry.rollouts)
    flat = [keyed_score(examples[i // GROUP].question_text, r.text) for i, r in enumerate(replies)]
    return torch.tensor(flat, dtype=torch.float64).view(-1, GROUP)


def optimiser_step(module: WavAlignModule, loss: torch.Tensor) -> None:
    opt = module.configure_optimizers()
    opt.zero_grad()
    loss.backward()
    opt.step()


def no_grad(fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return fn()
