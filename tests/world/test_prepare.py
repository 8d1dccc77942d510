"""Preparing the world on disk: deterministic, cached, reference schema, readable audio, disjoint splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wavalign.audio.io import read_wav
from wavalign.world.__main__ import main
from wavalign.world.prepare import SAMPLE_RATE, content_hash, prepare_world
from wavalign.world.settings import WorldSettings
from wavalign.world.tasks import SPLITS

TINY = dict(seed=0, n_train=12, n_val=3, n_test=3, num_codes=8, frame_ms=40.0, max_fit_utterances=8)  # seconds


def _rows(root: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (root / f"{split}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    a = prepare_world(WorldSettings(str(tmp_path_factory.mktemp("world_a")), **TINY), verbose=False)
    b = prepare_world(WorldSettings(str(tmp_path_factory.mktemp("world_b")), **TINY), verbose=False)
    return a, b


def test_prepare_is_deterministic(worlds: tuple[Path, Path]) -> None:
    a, b = worlds
    for split in SPLITS:
        assert (a / f"{split}.jsonl").read_bytes() == (b / f"{split}.jsonl").read_bytes()
    with np.load(a / "codebook.npz") as za, np.load(b / "codebook.npz") as zb:
        assert sorted(za.files) == sorted(zb.files)
        for key in za.files:
            assert np.array_equal(za[key], zb[key]), key
    assert json.loads((a / "manifest.json").read_text()) == json.loads((b / "manifest.json").read_text())
    assert content_hash(a) == json.loads((a / "manifest.json").read_text())["content_hash"]


def test_rows_follow_the_reference_schema_and_audio_resolves(worlds: tuple[Path, Path]) -> None:
    root = worlds[0]
    for split, n in zip(SPLITS, (TINY["n_train"], TINY["n_val"], TINY["n_test"])):
        rows = _rows(root, split)
        assert len(rows) == n
        for row in rows:
            assert [m["role"] for m in row["messages"]] == ["system", "user"]
            assert row["messages"][0]["content"] == f"style: {row['style']}"
            assert row["messages"][1]["content"] == "<|audio|>" and len(row["audios"]) == 1
            answer = row["reference_answer"].split()  # the reply ends with the answer ("repeat": three words)
            assert row["task_type"] == "s2s" and row["sft_target_text"].split()[-len(answer) :] == answer
            assert row["question_text"] and row["family"]
            for rel in (row["audios"][0], row["sft_target_audio"]):
                assert not Path(rel).is_absolute()
                wav, sr = read_wav(root / rel)
                assert sr == SAMPLE_RATE and len(wav) > SAMPLE_RATE // 4 and np.abs(wav).max() > 0.01


def test_rows_load_with_the_data_schema(worlds: tuple[Path, Path]) -> None:
    schema = pytest.importorskip("wavalign.data.schema")
    examples = schema.load_jsonl(worlds[0] / "train.jsonl")
    assert len(examples) == TINY["n_train"] and all(e.reference_answer and e.style for e in examples)


def test_splits_are_disjoint_by_question(worlds: tuple[Path, Path]) -> None:
    questions = {s: {r["question_text"] for r in _rows(worlds[0], s)} for s in SPLITS}
    assert not (questions["train"] & questions["val"]) and not (questions["train"] & questions["test"])
    assert not (questions["val"] & questions["test"])


def test_cache_hit_rewrites_nothing(worlds: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = worlds[0]
    files = [p for p in root.rglob("*") if p.is_file()]
    before = {p: p.stat().st_mtime_ns for p in files}
    assert prepare_world(WorldSettings(str(root), **TINY)) == root
    assert "cached" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in files} == before
    args = [
        "prepare",
        "--out",
        str(root),
        "--train",
        "12",
        "--val",
        "3",
        "--test",
        "3",
        "--num-codes",
        "8",
        "--max-fit-utterances",
        "8",
    ]
    assert main(args) == 0 and "cached" in capsys.readouterr().out


def test_changed_settings_rebuild(tmp_path: Path) -> None:
    root = prepare_world(WorldSettings(str(tmp_path), **{**TINY, "n_train": 6}), verbose=False)
    small = json.loads((root / "manifest.json").read_text())
    prepare_world(WorldSettings(str(root), **{**TINY, "n_train": 9}), verbose=False)
    big = json.loads((root / "manifest.json").read_text())
    assert small["counts"]["train"] == 6 and big["counts"]["train"] == 9 and len(_rows(root, "train")) == 9
    used = {
        r[k] if k == "sft_target_audio" else r[k][0]
        for s in SPLITS
        for r in _rows(root, s)
        for k in ("audios", "sft_target_audio")
    }
    assert {p.relative_to(root).as_posix() for p in (root / "audio").glob("*.wav")} == used  # no stale audio


def test_impossible_counts_fail_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="n_test.*only"):
        prepare_world(WorldSettings(str(tmp_path / "w"), **{**TINY, "n_test": 100000}), verbose=False)
    assert not (tmp_path / "w").exists()
    assert main(["prepare", "--out", str(tmp_path / "w"), "--test", "100000"]) == 2
    assert "error:" in capsys.readouterr().err
