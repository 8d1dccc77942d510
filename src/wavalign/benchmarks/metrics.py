"""The paper's evaluation measures as torchmetrics, so they accumulate over batches and reduce across processes.

- `IQ` (0-100): mean correctness of the replies x 100; correctness of one reply lies in [0, 1].
- `EQ` (1-5): mean expressiveness score of the replies, on the judge's 1..5 scale.
- `SpeechTextWER`: word error rate of hypotheses (ASR transcripts of the reply audio) against references (the
  reply's own text), accumulated as total word errors / total reference words (corpus WER), never as a mean of
  per-utterance WERs, which would let a one-word reply weigh as much as a long one.

`IQ.standard_error()` / `EQ.standard_error()` give the standard error of the mean over the counted values (logged as
eval/.../iq_se), so a difference between two evaluations can be read against sampling noise.

Each `compute()` returns NaN when nothing was counted (e.g. a benchmark without references has no IQ); callers decide
whether to log it. States are float64 sums, reduced with `sum` across processes.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import jiwer
import torch
from torch import Tensor
from torchmetrics import Metric

_WORD = re.compile(r"[a-z0-9']+")


def normalize_words(text: str) -> str:
    """Lowercase words without punctuation, space-joined: ASR transcripts carry no case or punctuation, so the
    reply text is compared on the same footing (the same word split as the rule judge)."""
    return " ".join(_WORD.findall(text.lower()))


def _as_float64(values: Tensor | Sequence[float]) -> Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).flatten()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"metric values must be finite, got {t.tolist()}")
    return t


class _MeanMetric(Metric):
    """sum / count with float64 states; subclasses check the range and scale the result."""

    is_differentiable = False
    full_state_update = False
    low: float = -math.inf
    high: float = math.inf
    scale: float = 1.0

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total_sq", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: Tensor | Sequence[float]) -> None:
        t = _as_float64(values)
        if t.numel() and (float(t.min()) < self.low or float(t.max()) > self.high):
            raise ValueError(f"{type(self).__name__} values must lie in [{self.low}, {self.high}], got {t.tolist()}")
        self.total += t.sum().to(self.total.device)
        self.total_sq += t.square().sum().to(self.total.device)
        self.count += t.numel()

    def compute(self) -> Tensor:
        if float(self.count) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.scale * self.total / self.count

    def standard_error(self) -> Tensor:
        """Standard error of compute(): scale x sample std / sqrt(count), NaN below two values. With one value per
        item (IQ averages an item's samples first), it is the item-level error of the mean: is a change noise?"""
        n = float(self.count)
        if n < 2:
            return torch.tensor(float("nan"), dtype=torch.float64)
        mean = self.total / self.count
        var = torch.clamp((self.total_sq - self.count * mean.square()) / (self.count - 1), min=0.0)
        return self.scale * torch.sqrt(var / self.count)


class IQ(_MeanMetric):
    """Intelligence quotient on 0-100: 100 x mean correctness, one correctness in [0, 1] per reply."""

    low, high, scale = 0.0, 1.0, 100.0
    higher_is_better = True


class EQ(_MeanMetric):
    """Expressiveness on the judge's 1-5 scale: the mean score of the replies."""

    low, high, scale = 1.0, 5.0, 1.0
    higher_is_better = True


class SpeechTextWER(Metric):
    """Corpus WER = sum(substitutions + deletions + insertions) / sum(reference words), after normalize_words.

    update(references, hypotheses): for the speech-text WER, references are the replies' texts and hypotheses the
    ASR transcripts of their audio. An empty reference adds its hypothesis' words as insertions and no words.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("errors", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("words", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, references: Sequence[str], hypotheses: Sequence[str]) -> None:
        if isinstance(references, str) or isinstance(hypotheses, str):
            raise TypeError("SpeechTextWER.update takes sequences of strings (one per utterance), not a string")
        if len(references) != len(hypotheses):
            raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
        if not references:
            return
        out = jiwer.process_words([normalize_words(r) for r in references], [normalize_words(h) for h in hypotheses])
        self.errors += float(out.substitutions + out.deletions + out.insertions)
        self.words += float(out.hits + out.substitutions + out.deletions)

    def compute(self) -> Tensor:
        if float(self.words) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.errors / self.words
