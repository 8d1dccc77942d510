"""`wavalign predict` in the embedded world, both layouts: real WAVs that read back with the codes' duration, and a
listening page whose every link is a file on disk. The world is prepared once (small) in a scratch directory."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf
from test_replies import parse_page, read_jsonl

from wavalign.audio.world_codec import WorldCodec
from wavalign.cli import main
from wavalign.predict.listening_page import main as page_main

SMALL_WORLD = [
    "--world.n_train=8",
    "--world.n_val=3",
    "--world.n_test=2",
    "--model.init_checkpoint=null",
    "--model.eval_sampling.max_new_tokens=24",
    "--trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def world(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    scratch = tmp_path_factory.mktemp("world")
    (scratch / "configs").symlink_to(root / "configs")
    return scratch


@pytest.fixture(scope="module")
def root() -> Path:
    return Path(__file__).resolve().parents[2]


def run_predict(world: Path, config: str, prompts: str, out: str, *extra: str) -> list[dict]:
    main(
        [
            "predict",
            "--config",
            config,
            "--data.predict_file",
            prompts,
            "--listen.output_dir",
            out,
            *SMALL_WORLD,
            *extra,
        ]
    )
    return read_jsonl(world / out / "replies.jsonl")


def check_wavs_and_page(world: Path, out: str, rows: list[dict]) -> None:
    codec = WorldCodec(str(world / ".cache/world/codebook.npz"))
    samples_per_code = round(codec.sample_rate / codec.frame_rate)  # 16 kHz x 40 ms = 640
    n_audio = 0
    for row in rows:
        for reply in row["replies"]:
            if not reply["speech_codes"]:
                assert reply["audio"] is None
                continue
            wav, sr = sf.read(str(world / out / reply["audio"]))
            assert sr == codec.sample_rate and wav.ndim == 1
            assert len(wav) == len(reply["speech_codes"]) * samples_per_code
            assert reply["duration_s"] == pytest.approx(len(reply["speech_codes"]) / codec.frame_rate, abs=1e-4)
            expected = np.clip(codec.decode(np.asarray(reply["speech_codes"])), -1, 1)
            assert np.abs(wav - expected).max() < 1e-3  # 16-bit PCM of the codec's own decode
            n_audio += 1
    assert n_audio > 0
    page = parse_page(world / out / "index.html")
    assert page.rows == 1 + len(rows)
    assert len(page.links) == n_audio + len(rows)  # each reply's WAV and each spoken question
    for link in page.links:
        assert not Path(unquote(link)).is_absolute()
        assert (world / out / unquote(link)).is_file(), link


def test_world_predict_writes_wavs_and_a_page(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world)
    rows = run_predict(
        world,
        "configs/tiny.yaml",
        ".cache/world/val.codes.jsonl",
        "listen/interleaved",
        "--listen.replies_per_prompt=2",
    )
    assert len(rows) == 3 and all(len(r["replies"]) == 2 for r in rows)
    assert all(r["style"] in ("neutral", "cheerful", "calm") and r["reference"] for r in rows)
    check_wavs_and_page(world, "listen/interleaved", rows)


def test_world_predict_parallel_layout(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world)
    rows = run_predict(world, "configs/tiny_parallel.yaml", ".cache/world/test.codes.jsonl", "listen/parallel")
    assert len(rows) == 2
    check_wavs_and_page(world, "listen/parallel", rows)


def test_page_of_folders_that_answered_other_prompts_fails(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """python -m wavalign.predict.listening_page puts predict folders side by side only when they answered the same prompts."""
    monkeypatch.chdir(world)
    if not (world / "listen/parallel/replies.jsonl").is_file():
        pytest.skip("needs the two predict folders of the tests above")
    with pytest.raises(ValueError, match="answered different prompts"):
        page_main(["listen/both", "listen/interleaved", "listen/parallel"])
    assert page_main(["listen/same", "listen/interleaved", "listen/interleaved"]) == 0
    html = (world / "listen/same/index.html").read_text()
    assert html.count('class="reply"') == 2 * 2 * 3  # two columns x two replies x three prompts
    assert json.loads((world / "listen/interleaved/meta.json").read_text())["checkpoint"] == "(untrained weights)"
