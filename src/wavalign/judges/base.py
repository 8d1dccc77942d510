"""The judge interface: a batch of spoken replies in, one score in [1, 5] per reply out.

A judge also says whether each score is *reliable*. An unreliable score (a failed HTTP call, an unparsable answer,
ASR that heard nothing) is kept for logging but the gate and the advantages treat it as uninformative.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

MIN_SCORE = 1.0
MAX_SCORE = 5.0


@dataclass
class JudgeRequest:
    """One reply to score, with what a judge may look at."""

    question: str
    reply_text: str
    reply_audio: np.ndarray | None = None  # mono float32 waveform in [-1, 1]
    sample_rate: int = 16000
    reference: str | None = None  # the reference answer, where the task has one
    style: str | None = None  # the requested speaking style, where the task has one


@dataclass
class JudgeScore:
    score: float
    reliable: bool = True
    parts: dict[str, float] = field(default_factory=dict)  # sub-scores (semantic, acoustic, wer, ...) for logging


class Judge(ABC):
    """Scores replies; implementations must return exactly one JudgeScore per request, in order."""

    @abstractmethod
    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]: ...

    def close(self) -> None:
        """Release pools or sessions; called once at the end of a run."""


def clip_score(x: float) -> float:
    return float(min(MAX_SCORE, max(MIN_SCORE, x)))
