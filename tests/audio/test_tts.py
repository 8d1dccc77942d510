"""espeak-ng TTS: deterministic, a clear error without espeak-ng, and styles that differ measurably in the audio."""

from __future__ import annotations

import numpy as np
import pytest

from wavalign.audio import tts
from wavalign.audio.tts import STYLES, SpeakingStyle, TTSError, synthesize

SENTENCES = ["what is three plus four", "the opposite of hot is cold"]


def _prosody(style: str) -> tuple[float, float, float]:
    """(median F0 in Hz, F0 spread in semitones, duration in s), averaged over SENTENCES."""
    pyworld = pytest.importorskip("pyworld")
    rows = []
    for text in SENTENCES:
        wav, sr = synthesize(text, style, sample_rate=16000)
        x = wav.astype(np.float64)
        f0, t = pyworld.dio(x, sr, f0_floor=50.0, f0_ceil=400.0, frame_period=5.0)
        f0 = pyworld.stonemask(x, f0, t, sr)
        voiced = f0[f0 > 0]
        rows.append((np.median(voiced), 12 * np.std(np.log2(voiced)), len(wav) / sr))
    return tuple(np.mean(rows, axis=0))


def test_synthesize_returns_float_mono_audio() -> None:
    wav, sr = synthesize("the sky is blue")
    assert sr == tts.ESPEAK_SAMPLE_RATE and wav.dtype == np.float32 and wav.ndim == 1
    assert 0.5 < len(wav) / sr < 5 and 0.05 < np.abs(wav).max() <= 1.0
    wav16, sr16 = synthesize("the sky is blue", sample_rate=16000)
    assert sr16 == 16000 and abs(len(wav16) / sr16 - len(wav) / sr) < 0.01


def test_synthesize_is_deterministic() -> None:
    for style in STYLES:
        a, _ = synthesize("nine minus two is seven", style, sample_rate=16000)
        b, _ = synthesize("nine minus two is seven", style, sample_rate=16000)
        assert np.array_equal(a, b)


def test_styles_differ_in_pitch_range_and_rate() -> None:
    neutral, cheerful, calm = (_prosody(s) for s in ("neutral", "cheerful", "calm"))
    assert cheerful[0] > 1.2 * neutral[0] and neutral[0] > 1.2 * calm[0]  # F0 level
    assert cheerful[1] > 1.5 * calm[1]  # intonation range
    assert calm[2] > 1.15 * neutral[2] and neutral[2] > 1.04 * cheerful[2]  # speaking rate


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown speaking style"):
        synthesize("hello", "angry")
    with pytest.raises(ValueError, match="non-empty"):
        synthesize("   ")
    with pytest.raises(ValueError, match="pitch"):
        SpeakingStyle("shrill", pitch=150, pitch_range=50, speed=175)


def test_missing_espeak_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    tts.espeak_binary.cache_clear()
    try:
        with pytest.raises(TTSError, match="apt-get install espeak-ng"):
            synthesize("hello")
    finally:
        tts.espeak_binary.cache_clear()
