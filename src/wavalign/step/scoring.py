"""Turn decoded replies into judge requests (decoding speech codes to audio), and scores into reward tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from wavalign.audio.codec import SpeechCodec
from wavalign.data.schema import DialogueExample
from wavalign.judges.base import MIN_SCORE, Judge, JudgeRequest, JudgeScore
from wavalign.policy.base import Reply


@dataclass
class ScoredGroups:
    rewards: Tensor  # (B, G), float64
    reliable: Tensor  # (B, G), bool
    scores: list[JudgeScore]
    requests: list[JudgeRequest]

    def part_means(self) -> dict[str, float]:
        keys = sorted({k for s in self.scores for k in s.parts})
        return {k: float(np.mean([s.parts[k] for s in self.scores if k in s.parts])) for k in keys}


def build_requests(
    examples: Sequence[DialogueExample], replies: Sequence[Reply], group_size: int, codec: SpeechCodec | None
) -> list[JudgeRequest]:
    if len(replies) != len(examples) * group_size:
        raise ValueError(f"{len(replies)} replies for {len(examples)} prompts x group size {group_size}")
    requests = []
    for i, reply in enumerate(replies):
        ex = examples[i // group_size]
        speech = codec is not None and bool(reply.speech_codes)
        requests.append(
            JudgeRequest(  # the audio is decoded where a judge first reads it (in parallel under PooledJudge)
                question=ex.question_text,
                reply_text=reply.text,
                reply_codes=np.asarray(reply.speech_codes, dtype=np.int64) if speech else None,
                codec=codec if speech else None,
                sample_rate=codec.sample_rate if codec is not None else 16000,
                reference=ex.reference_answer,
                style=ex.style,
            )
        )
    return requests


def score_groups(judge: Judge, requests: list[JudgeRequest], group_size: int) -> ScoredGroups:
    scores = judge.score(requests)
    if len(scores) != len(requests):
        raise RuntimeError(f"{type(judge).__name__} returned {len(scores)} scores for {len(requests)} replies")
    rewards = torch.tensor([s.score for s in scores], dtype=torch.float64).view(-1, group_size)
    reliable = torch.tensor([s.reliable for s in scores], dtype=torch.bool).view(-1, group_size)
    finite = torch.isfinite(rewards)
    if not bool(finite.all()):  # a NaN/inf score must not reach the gate's EMA or the advantages: uninformative
        reliable &= finite
        rewards = torch.where(finite, rewards, torch.full_like(rewards, MIN_SCORE))
        for s, ok in zip(scores, finite.flatten().tolist()):
            if not ok:
                s.score, s.reliable, s.error = (
                    MIN_SCORE,
                    False,
                    s.error or f"non-finite score from {type(judge).__name__}",
                )
    return ScoredGroups(rewards, reliable, scores, requests)
