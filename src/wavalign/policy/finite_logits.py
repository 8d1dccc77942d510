"""A check on next-token logits before a token is sampled from them: NaN or +inf logits mean diverged weights.

Why before sampling: torch.multinomial on NaN/inf probabilities fails with a bare "probability tensor contains
either inf, nan or element < 0" on CPU, and on CUDA with a device-side assert that leaves the process's CUDA
context unusable, so nothing (not even the interrupt checkpoint) can run after it. Raising here, in Python, keeps
the process able to stop cleanly (wavalign.callbacks.divergence turns it into Diverged). -inf alone is normal
(masked tokens), but a row with no finite logit has nothing to sample.
"""

from __future__ import annotations

import torch
from torch import Tensor
from transformers import LogitsProcessor


class NonFiniteLogits(RuntimeError):
    """The policy's next-token logits hold NaN or +inf, or a row has no finite logit."""


def check_finite_logits(logits: Tensor) -> None:
    """Raise NonFiniteLogits for NaN or +inf logits, or a row without a finite one (one device sync)."""
    bad = torch.isnan(logits).any() | torch.isposinf(logits).any() | torch.isneginf(logits).all(dim=-1).any()
    if bool(bad):
        raise NonFiniteLogits(
            "the policy's next-token logits hold NaN or +inf (or a row with no finite value): its weights diverged"
        )


class FiniteLogitsCheck(LogitsProcessor):
    """check_finite_logits at every step of transformers' generate; the scores pass through unchanged."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        check_finite_logits(scores)
        return scores
