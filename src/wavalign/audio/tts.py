"""Offline text-to-speech with espeak-ng, with a few speaking styles that differ measurably in audio.

The embedded world needs speech that is cheap (~20 ms per sentence), deterministic and offline, and a handle on
expressiveness that a judge can measure from the waveform alone: a style sets espeak-ng's base pitch (-p), speed in
words per minute (-s), amplitude (-a) and pitch range (the SSML <prosody range="0..100"> attribute, because the
espeak-ng 1.51 command line has no pitch-range flag). Cheerful is high, wide and fast; calm is low, flat and slow.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

from wavalign.audio.io import resample

ESPEAK_VOICE = "en-us"
ESPEAK_SAMPLE_RATE = 22050  # what espeak-ng's built-in voices emit


class TTSError(RuntimeError):
    pass


@dataclass(frozen=True)
class SpeakingStyle:
    """espeak-ng prosody settings; every value is in espeak-ng's own units."""

    name: str
    pitch: int  # base pitch, 0..99 (espeak default 50)
    pitch_range: int  # intonation range, 0 (monotone)..100 (espeak default 50)
    speed: int  # words per minute, 80..450 (espeak default 175)
    amplitude: int = 100  # 0..200 (espeak default 100)

    def __post_init__(self) -> None:
        for field, value, lo, hi in (
            ("pitch", self.pitch, 0, 99),
            ("pitch_range", self.pitch_range, 0, 100),
            ("speed", self.speed, 80, 450),
            ("amplitude", self.amplitude, 0, 200),
        ):
            if not lo <= value <= hi:
                raise ValueError(f"SpeakingStyle {self.name!r}: {field}={value} is outside espeak-ng's {lo}..{hi}")


# Measured with pyworld (DIO + StoneMask) over four world sentences (neutral / cheerful / calm): median F0 ~99 / ~125 /
# ~72 Hz, F0 spread (std of log F0) ~2.2 / ~3.1 / ~1.1 semitones, duration ~1.91 / ~1.75 / ~2.47 s. Cheerful stops at
# pitch 65 and 190 wpm: at pitch 75 and 210 wpm the ASR mis-heard even the raw speech (WER 0.10 vs 0.01) and the WORLD
# codec round trip made it worse (0.31 vs 0.07 for neutral).
STYLES: dict[str, SpeakingStyle] = {
    "neutral": SpeakingStyle("neutral", pitch=50, pitch_range=50, speed=175, amplitude=100),
    "cheerful": SpeakingStyle("cheerful", pitch=65, pitch_range=100, speed=190, amplitude=110),
    "calm": SpeakingStyle("calm", pitch=28, pitch_range=8, speed=140, amplitude=90),
}


def get_style(style: str | SpeakingStyle) -> SpeakingStyle:
    if isinstance(style, SpeakingStyle):
        return style
    try:
        return STYLES[style]
    except KeyError:
        raise ValueError(f"unknown speaking style {style!r}; known: {sorted(STYLES)}") from None


@lru_cache(maxsize=1)
def espeak_binary() -> str:
    """Path of espeak-ng (or espeak); a clear error when neither is installed."""
    for name in ("espeak-ng", "espeak"):
        path = shutil.which(name)
        if path:
            return path
    raise TTSError("espeak-ng is not installed (or not on PATH); install it with: apt-get install espeak-ng")


def synthesize(
    text: str, style: str | SpeakingStyle = "neutral", sample_rate: int | None = None, voice: str = ESPEAK_VOICE
) -> tuple[np.ndarray, int]:
    """Speak `text` in `style` -> (mono float32 waveform in [-1, 1], sample rate).

    Output is deterministic for the same text, style and espeak-ng version. With `sample_rate` the waveform is
    resampled to it (the world stores 16 kHz, the codec's rate); otherwise espeak-ng's native 22.05 kHz is returned.
    `voice` is an espeak-ng voice name, optionally with a variant ("en-gb", "en-us+m3"): the world's "heard" split
    records training questions in other voices than its default one.
    """
    if not text or not text.strip():
        raise ValueError("synthesize() needs non-empty text")
    st = get_style(style)
    ssml = f'<speak><prosody range="{st.pitch_range}">{escape(text.strip())}</prosody></speak>'
    cmd = [
        espeak_binary(),
        "-v",
        voice,
        "-m",
        "-p",
        str(st.pitch),
        "-s",
        str(st.speed),
        "-a",
        str(st.amplitude),
        "--stdout",
        ssml,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=True, timeout=60)
    except subprocess.CalledProcessError as e:
        raise TTSError(f"espeak-ng failed on {text!r}: {e.stderr.decode(errors='replace').strip()}") from None
    if not proc.stdout:
        raise TTSError(f"espeak-ng produced no audio for {text!r}")
    wav, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if wav.ndim > 1:
        wav = wav.mean(axis=1)
    if sample_rate is not None:
        wav, sr = resample(wav, sr, sample_rate), sample_rate
    return np.clip(wav, -1.0, 1.0).astype(np.float32), int(sr)
