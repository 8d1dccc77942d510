"""wavalign.predict.listening_page on hand-written predict folders: escaping, relative links, unmatched prompts, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wavalign.audio.io import write_wav
from wavalign.predict.listening_page import load_run, write_page


def make_run(root: Path, rows: list[dict], checkpoint: str) -> Path:
    root.mkdir(parents=True)
    (root / "replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "meta.json").write_text(json.dumps({"checkpoint": checkpoint, "mean_score": 3.0}), encoding="utf-8")
    for row in rows:
        for reply in row["replies"]:
            if reply.get("audio"):
                write_wav(root / reply["audio"], np.zeros(160, dtype=np.float32), 16000)
    return root


def row(pid: int, question: str, text: str, audio: str | None) -> dict:
    reply = {
        "text": text,
        "speech_codes": [1, 2],
        "score": 5.0,
        "reliable": True,
        "parts": {"correct": 1.0},
        "audio": audio,
    }
    return {
        "id": pid,
        "source": f"p.jsonl:{pid + 1}",
        "question": question,
        "reference": "two",
        "demonstration": None,
        "style": None,
        "question_audio": None,
        "replies": [reply],
    }


def test_two_runs_side_by_side_with_relative_links_and_escaped_text(tmp_path: Path) -> None:
    a = make_run(
        tmp_path / "runs a" / "warm",
        [row(0, "one & one?", "<i>two</i>", "audio/00000_0.wav"), row(1, "two plus two", "four", None)],
        "sft.ckpt",
    )
    b = make_run(tmp_path / "rl", [row(0, "one & one?", "two", "audio/00000_0.wav")], "rl.ckpt")
    page = write_page(tmp_path / "page", [a, b])
    html = page.read_text(encoding="utf-8")
    assert "one &amp; one?" in html and "&lt;i&gt;two&lt;/i&gt;" in html and "<i>" not in html
    assert 'src="../runs%20a/warm/audio/00000_0.wav"' in html and 'src="../rl/audio/00000_0.wav"' in html
    assert "(this prompt was not answered here)" in html  # prompt 1 is missing from the RL folder
    assert "sft.ckpt" in html and "rl.ckpt" in html and html.count("<tr>") == 3


def test_malformed_replies_file_names_file_and_line(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", [row(0, "q", "a", None)], "x.ckpt")
    with (run / "replies.jsonl").open("a") as f:
        f.write('{"question": "no id"}\n')
    with pytest.raises(ValueError, match=r"replies.jsonl:2: not a replies.jsonl line"):
        load_run(run)
    with pytest.raises(FileNotFoundError, match="holds no replies.jsonl"):
        write_page(tmp_path / "page", [tmp_path / "nothing"])
