"""The codec round-trip measurement on a tiny prepared world (the real figure comes from scripts/codec_roundtrip.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wavalign.world.prepare import prepare_world
from wavalign.world.roundtrip import measure
from wavalign.world.settings import WorldSettings

TINY = dict(seed=1, n_train=12, n_val=3, n_test=3, num_codes=16, frame_ms=40.0, max_fit_utterances=12)


def test_measures_original_and_roundtrip_wer(tmp_path: Path) -> None:
    root = prepare_world(WorldSettings(str(tmp_path / "world"), **TINY), verbose=False)
    r = measure(root, "test", workers=1)
    assert r.utterances == 6  # 3 questions + 3 replies, each heard twice
    assert 0.0 <= r.wer_original < 0.5  # espeak-ng speech through the task-LM ASR is mostly recognised
    assert r.wer_roundtrip >= 0.0 and r.gap == pytest.approx(r.wer_roundtrip - r.wer_original)
    assert measure(root, "test", limit=2, workers=1).utterances == 2


def test_unprepared_world_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="test.jsonl"):
        measure(tmp_path, "test")
