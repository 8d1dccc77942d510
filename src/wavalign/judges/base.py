"""The judge interface: a batch of spoken replies in, one score in [1, 5] per reply out.

A judge also says whether each score is *reliable*. An unreliable score (a failed HTTP call, an unparsable answer,
ASR that heard nothing) is kept for logging but the gate and the advantages treat it as uninformative.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from wavalign.audio.codec import SpeechCodec

MIN_SCORE = 1.0
MAX_SCORE = 5.0


class _DecodedOnFirstUse:
    """reply_audio of a request that carries speech codes and a codec: decoded when a judge first reads it.

    So decoding runs where the judge runs (a PooledJudge worker, in parallel), and never for text-only judges."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> np.ndarray | None:
        if obj is None:
            return None  # the dataclass field's default
        audio = obj.__dict__.get(self.slot)
        if audio is None and obj.reply_codes is not None and obj.codec is not None:
            audio = obj.codec.decode(np.asarray(obj.reply_codes, dtype=np.int64))
            obj.__dict__[self.slot] = audio
        return audio

    def __set__(self, obj: Any, value: np.ndarray | None) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class JudgeRequest:
    """One reply to score, with what a judge may look at. Give reply_audio, or reply_codes and the codec that
    decodes them (then reply_audio is decoded on first read)."""

    question: str
    reply_text: str
    reply_audio: _DecodedOnFirstUse = _DecodedOnFirstUse()  # mono float32 waveform in [-1, 1], or None
    sample_rate: int = 16000
    reference: str | None = None  # the reference answer, where the task has one
    style: str | None = None  # the requested speaking style, where the task has one
    reply_codes: np.ndarray | None = field(default=None, repr=False)  # the reply's speech tokens (codec ids)
    codec: SpeechCodec | None = field(default=None, repr=False, compare=False)


@dataclass
class JudgeScore:
    score: float
    reliable: bool = True
    parts: dict[str, float] = field(default_factory=dict)  # sub-scores (semantic, acoustic, wer, ...) for logging
    error: str | None = None  # why an unreliable score is one (no secrets: judges redact), for the outage stop


class Judge(ABC):
    """Scores replies; implementations must return exactly one JudgeScore per request, in order."""

    @abstractmethod
    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]: ...

    def close(self) -> None:
        """Release pools or sessions; called once at the end of a run."""


def clip_score(x: float) -> float:
    return float(min(MAX_SCORE, max(MIN_SCORE, x)))
