"""WAV reading/writing and resampling on soundfile + scipy, so the core never needs torchaudio.

Everything downstream (codec, ASR, judges) works on mono float32; read_wav folds channels and dtypes into that
shape once, at the boundary, and fails with the offending path in the message rather than deep inside numpy.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Audio file -> (mono float32 waveform in [-1, 1], sample rate). Channels are averaged, not dropped."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"audio file {p} does not exist")
    try:
        wav, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"cannot read audio file {p}: {e}") from None
    mono = wav.mean(axis=1) if wav.shape[1] > 1 else wav[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


def write_wav(path: str | Path, wav: np.ndarray, sample_rate: int) -> None:
    """Write a mono waveform as 16-bit PCM WAV; values beyond [-1, 1] are clipped (PCM cannot hold them)."""
    arr = np.asarray(wav, dtype=np.float32)
    if arr.ndim != 1:
        raise ValueError(f"write_wav({path}): expected a mono 1-D waveform, got shape {arr.shape}")
    if sample_rate <= 0:
        raise ValueError(f"write_wav({path}): sample rate must be positive, got {sample_rate}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), np.clip(arr, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")


def resample(wav: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Band-limited polyphase resampling (scipy), deterministic; up/down factors are gcd-reduced to stay cheap."""
    arr = np.asarray(wav, dtype=np.float32)
    sr_from, sr_to = int(sr_from), int(sr_to)
    if sr_from <= 0 or sr_to <= 0:
        raise ValueError(f"resample: sample rates must be positive, got {sr_from} -> {sr_to}")
    if sr_from == sr_to or arr.size == 0:
        return arr.copy()
    from scipy.signal import resample_poly

    g = gcd(sr_from, sr_to)
    out = resample_poly(arr.astype(np.float64), sr_to // g, sr_from // g)
    return out.astype(np.float32)
