"""Hand-written `predict` folders with real WAV files, and a built session over them, for the listening tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from wavalign.audio.io import write_wav
from wavalign.listening.session import Session, build_session

QUESTIONS = ["what is one plus one", "what is two plus two", "name a colour"]
SAMPLE_RATE = 16000


def tone(freq: float, seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_run(root: Path, texts: list[str], checkpoint: str, freq: float, questions=QUESTIONS, audio=True) -> Path:
    """A predict folder: one reply per prompt, each a `freq` Hz tone (so tests can tell systems apart by ear)."""
    rows = []
    for pid, (question, text) in enumerate(zip(questions, texts)):
        wav = f"audio/{pid:05d}_0.wav" if audio else None
        if wav:
            write_wav(root / wav, tone(freq + 10 * pid), SAMPLE_RATE)
        reply = {"text": text, "speech_codes": [1, 2], "score": 3.0, "reliable": True, "parts": {}, "audio": wav}
        rows.append(
            {
                "id": pid,
                "source": f"p.jsonl:{pid + 1}",
                "question": question,
                "reference": None,
                "demonstration": None,
                "style": None,
                "question_audio": None,
                "replies": [reply],
            }
        )
    root.mkdir(parents=True, exist_ok=True)
    (root / "replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "meta.json").write_text(json.dumps({"checkpoint": checkpoint}), encoding="utf-8")
    return root


def two_runs(tmp: Path) -> tuple[Path, Path]:
    """Folders whose names and checkpoints are easy to spot in anything served (the blinding checks)."""
    alpha = make_run(tmp / "zzalphamodel", ["two", "four", "red"], "/ckpt/zzalpha.ckpt", 440.0)
    beta = make_run(tmp / "zzbetamodel", ["three", "five", "blue"], "/ckpt/zzbeta.ckpt", 660.0)
    return alpha, beta


SECRETS = ("zzalpha", "zzbeta")  # no served byte may contain these


def built(tmp: Path, **kwargs) -> Session:
    alpha, beta = two_runs(tmp / "runs")
    return build_session(tmp / "session", [alpha, beta], **kwargs)


SRC = Path(__file__).resolve().parents[2] / "src"


@contextmanager
def serving(session_dir: Path, *extra: str, port: int = 0) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python -m wavalign.listening serve SESSION_DIR --port PORT` as a real process (0: a free port); yields
    (process, base URL)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wavalign.listening", "serve", str(session_dir), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # the server prints its URL once it listens
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, f"the server did not start: {line}{proc.stdout.read() if proc.poll() is not None else ''}"
        yield proc, found.group(0)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        proc.stdout.close()


def post_vote(url: str, rater: str, trial: str, choices: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + "/api/vote",
        data=json.dumps({"rater": rater, "trial": trial, "choices": choices}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
