"""Small deterministic stand-ins for the parts a callback test does not examine: a codec and an ASR."""

from __future__ import annotations

import numpy as np

from wavalign.audio.codec import SpeechCodec


class ToyCodec(SpeechCodec):
    """One code per 20 ms frame: encode quantises the frame's RMS level; decode plays a short tone per code."""

    sample_rate = 16000
    num_codes = 64
    frame_rate = 50.0

    def encode(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        hop = sample_rate // 50
        frames = np.asarray(wav, dtype=np.float64)[: len(wav) // hop * hop].reshape(-1, hop)
        rms = np.sqrt((frames**2).mean(axis=1))
        return np.minimum(self.num_codes - 1, (rms * 4 * self.num_codes).astype(np.int64))

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        t = np.arange(self.sample_rate // 50) / self.sample_rate
        tones = [0.3 * np.sin(2 * np.pi * (100 + 10 * int(c)) * t) for c in np.asarray(tokens).ravel()]
        return np.concatenate(tones).astype(np.float32) if tones else np.zeros(0, dtype=np.float32)


class ScriptedASR:
    """'Hears' a fixed transcript per number of decoded frames, so a test knows every hypothesis in advance."""

    def __init__(self, by_frames: dict[int, str]) -> None:
        self.by_frames = by_frames
        self.calls = 0

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> str:
        self.calls += 1
        return self.by_frames[len(wav) // (sample_rate // 50)]
