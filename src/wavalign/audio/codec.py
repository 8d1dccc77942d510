"""The speech codec interface: waveform -> one discrete token per frame, tokens -> waveform.

Real models plug their own tokenizer/detokenizer in behind this interface; the embedded world uses WorldCodec.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class SpeechCodec(ABC):
    """A speech codec (the module's `codec`): waveform -> one discrete code per frame, and codes -> waveform.

    Subclasses set sample_rate (what decode() returns), num_codes (codes are 0 .. num_codes - 1) and frame_rate
    (codes per second).
    """

    sample_rate: int  # the rate decode() returns and encode() expects after resampling
    num_codes: int  # token ids are in [0, num_codes)
    frame_rate: float  # tokens per second

    @abstractmethod
    def encode(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono float waveform -> int64 array of token ids, shape (frames,)."""

    @abstractmethod
    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Token ids -> mono float32 waveform at self.sample_rate."""
