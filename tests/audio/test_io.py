"""WAV I/O and resampling on real espeak-ng audio: round trips, mono folding, clear errors naming the file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavalign.audio.io import read_wav, resample, write_wav

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("io") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "the sky is blue"], check=True, capture_output=True)
    return path


def test_read_espeak_wav(speech: Path) -> None:
    wav, sr = read_wav(speech)
    assert sr == 22050 and wav.dtype == np.float32 and wav.ndim == 1
    assert 0.5 < len(wav) / sr < 3.0 and 0.05 < np.abs(wav).max() <= 1.0


def test_write_read_round_trip(speech: Path, tmp_path: Path) -> None:
    wav, sr = read_wav(speech)
    out = tmp_path / "nested" / "copy.wav"
    write_wav(out, wav, sr)
    back, sr2 = read_wav(out)
    assert sr2 == sr and len(back) == len(wav)
    assert np.max(np.abs(back - wav)) <= 1.0 / 32767 + 1e-6  # 16-bit PCM: exact up to one quantisation step


def test_write_clips_out_of_range_values(tmp_path: Path) -> None:
    write_wav(tmp_path / "loud.wav", np.array([2.0, -2.0, 0.5], dtype=np.float32), 16000)
    back, _ = read_wav(tmp_path / "loud.wav")
    assert back.max() <= 1.0 and back.min() >= -1.0 and abs(back[2] - 0.5) < 1e-3


def test_multichannel_is_averaged(speech: Path, tmp_path: Path) -> None:
    wav, sr = read_wav(speech)
    stereo = np.stack([wav, np.zeros_like(wav)], axis=1)
    sf.write(str(tmp_path / "stereo.wav"), stereo, sr, subtype="FLOAT")
    mono, _ = read_wav(tmp_path / "stereo.wav")
    assert mono.shape == wav.shape and np.allclose(mono, wav / 2, atol=1e-6)


def test_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        read_wav(missing)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio" * 10)
    with pytest.raises(ValueError, match="garbage.wav"):
        read_wav(garbage)
    with pytest.raises(ValueError, match="mono"):
        write_wav(tmp_path / "x.wav", np.zeros((10, 2), dtype=np.float32), 16000)


def test_resample_keeps_duration_and_pitch(speech: Path) -> None:
    wav, sr = read_wav(speech)
    out = resample(wav, sr, 16000)
    assert out.dtype == np.float32 and abs(len(out) - len(wav) * 16000 / sr) <= 1
    t = np.arange(22050) / 22050
    tone = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), 22050, 16000)
    peak_hz = np.argmax(np.abs(np.fft.rfft(tone))) * 16000 / len(tone)
    assert abs(peak_hz - 440) < 2
    assert np.array_equal(resample(wav, sr, sr), wav) and resample(np.zeros(0), 8000, 16000).size == 0
