"""WorldCodec on real espeak-ng speech: token counts follow the frame rate, decoding keeps the duration, the
codebook file round-trips exactly, and bad input or bad files fail clearly."""

from __future__ import annotations

import math
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from wavalign.audio.codec import SpeechCodec
from wavalign.audio.io import read_wav, resample
from wavalign.audio.world_codec import WorldCodec

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

FIT = [
    "what is two plus three",
    "the sky is blue",
    "four plus five is nine",
    "snow is white",
    "what is one plus four",
    "the opposite of hot is cold",
    "three plus three is six",
    "grass is green",
]
HELD_OUT = ["what is three plus five", "two plus four is six"]


def espeak(text: str, path: Path, *flags: str) -> tuple[np.ndarray, int]:
    subprocess.run(["espeak-ng", *flags, "-w", str(path), text], check=True, capture_output=True)
    return read_wav(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[np.ndarray]]:
    root = tmp_path_factory.mktemp("codec")
    fit = [espeak(t, root / f"fit{i}.wav", "-p", str(30 + 10 * (i % 3)))[0] for i, t in enumerate(FIT)]
    held = [espeak(t, root / f"held{i}.wav")[0] for i, t in enumerate(HELD_OUT)]
    return {"fit": fit, "held": held}  # espeak-ng's native 22.05 kHz: fit and encode must resample


@pytest.fixture(scope="module")
def codec(clips: dict[str, list[np.ndarray]]) -> WorldCodec:
    return WorldCodec.fit(clips["fit"], 22050, num_codes=32, frame_ms=40.0, seed=0)


def test_interface_attributes(codec: WorldCodec) -> None:
    assert isinstance(codec, SpeechCodec)
    assert codec.sample_rate == 16000 and codec.num_codes == 32 and codec.frame_rate == pytest.approx(25.0)


def test_encode_follows_the_frame_rate_and_decode_keeps_duration(codec: WorldCodec, clips: dict) -> None:
    for wav in clips["held"]:
        duration = len(wav) / 22050
        ids = codec.encode(wav, 22050)
        assert ids.dtype == np.int64 and ids.ndim == 1
        assert abs(len(ids) - duration * codec.frame_rate) <= 1
        assert ids.min() >= 0 and ids.max() < codec.num_codes
        assert len(np.unique(ids)) >= 8  # speech uses many codes, not one
        out = codec.decode(ids)
        assert out.dtype == np.float32 and out.ndim == 1 and np.all(np.isfinite(out))
        assert abs(len(out) / codec.sample_rate - duration) <= 1.0 / codec.frame_rate
        assert 0.02 < np.abs(out).max() < 1.5  # audible, not blown up


def test_encode_resamples_to_16k(codec: WorldCodec, clips: dict) -> None:
    wav = clips["held"][0]
    assert np.array_equal(codec.encode(wav, 22050), codec.encode(resample(wav, 22050, 16000), 16000))


def test_short_and_silent_input_give_tokens(codec: WorldCodec) -> None:
    for wav in (np.zeros(0, np.float32), np.zeros(7, np.float32), np.zeros(16000, np.float32)):
        ids = codec.encode(wav, 16000)
        assert len(ids) == max(1, math.ceil(len(wav) / 640)) and ids.min() >= 0 and ids.max() < codec.num_codes
        assert len(codec.decode(ids)) == 640 * len(ids)
    assert codec.decode(np.zeros(0, dtype=np.int64)).size == 0


def test_bad_input_is_rejected(codec: WorldCodec) -> None:
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        codec.decode(np.array([0, 32]))
    with pytest.raises(ValueError, match="integer"):
        codec.decode(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(np.array([0.0, np.nan] * 800, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="1-D"):
        codec.encode(np.zeros((800, 2), np.float32), 16000)


def test_save_load_round_trip(codec: WorldCodec, clips: dict, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "codebook.npz"
    codec.save(path)
    assert path.is_file() and not (tmp_path / "sub" / "codebook.npz.npz").exists()
    for loaded in (WorldCodec(codebook_path=str(path)), WorldCodec.load(path), pickle.loads(pickle.dumps(codec))):
        assert loaded.num_codes == codec.num_codes and loaded.frame_rate == codec.frame_rate
        for wav in clips["held"]:
            ids = codec.encode(wav, 22050)
            assert np.array_equal(loaded.encode(wav, 22050), ids)
            assert np.array_equal(loaded.decode(ids), codec.decode(ids))


def test_fit_is_deterministic_and_frame_ms_is_kept(clips: dict) -> None:
    a = WorldCodec.fit(clips["fit"][:4], 22050, num_codes=16, frame_ms=20.0, seed=3)
    b = WorldCodec.fit(clips["fit"][:4], 22050, num_codes=16, frame_ms=20.0, seed=3)
    assert a.frame_rate == pytest.approx(50.0)
    wav = clips["held"][1]
    ids = a.encode(wav, 22050)
    assert np.array_equal(ids, b.encode(wav, 22050)) and abs(len(ids) - len(wav) / 22050 * 50) <= 1
    with pytest.raises(ValueError, match="frames"):
        WorldCodec.fit([clips["fit"][0][:2205]], 22050, num_codes=64)
    with pytest.raises(ValueError, match="voiced"):
        WorldCodec.fit([np.zeros(22050, np.float32)], 22050, num_codes=4)


def test_bad_codebook_files_fail_naming_the_file(codec: WorldCodec, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        WorldCodec(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file" * 20)
    with pytest.raises(ValueError, match="garbage.npz"):
        WorldCodec(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz.*lacks"):
        WorldCodec(other)
    good = tmp_path / "good.npz"
    codec.save(good)
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["centroids"] = arrays["centroids"][:, :5]
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    with pytest.raises(ValueError, match="broken.npz.*malformed"):
        WorldCodec(broken)
