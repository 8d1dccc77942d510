"""Build the embedded world on disk: spoken questions and styled demonstration replies, JSONL splits, codec codebook.

Layout of DIR (paths inside the JSONL are relative to DIR):
  audio/q_QQQQQ.wav           question QQQQQ (qid of tasks.all_questions()), neutral style, 16 kHz; shared by the
                              examples that ask this question in different styles
  audio/a_QQQQQ_STYLE.wav     demonstration reply to question QQQQQ spoken in STYLE (a_QQQQQ_STYLE_x.wav: an
                              imperfect teacher's reply ending with a wrong answer, see world/teacher.py)
  audio/h_QQQQQ_vK.wav        heard split only: training question QQQQQ recorded in voice K of teacher.HEARD_VOICES
  train.jsonl, val.jsonl, test.jsonl   the reference schema of method.md plus reference_answer, style, family, qid
                              (plus teacher_answer_wrong / demo_style on rows an imperfect teacher got wrong)
  heard.jsonl                 only with heard_examples > 0: training questions in new recordings, right replies
  codebook.npz                WorldCodec codebook fitted on training audio only (questions + replies)
  manifest.json               settings, counts and a content hash; written last, so its presence means "complete"

Preparation is deterministic (same settings -> byte-identical JSONL and WAVs, identical codebook arrays) and cached:
when manifest.json already records the same settings, nothing is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from wavalign.audio.io import read_wav, write_wav
from wavalign.audio.tts import ESPEAK_VOICE, STYLES, SpeakingStyle, espeak_binary, synthesize
from wavalign.audio.world_codec import WorldCodec
from wavalign.runtime.progress import ProgressLines
from wavalign.world.settings import WorldSettings
from wavalign.world.tasks import (
    SPLITS,
    WORLD_STYLES,
    Example,
    SplitTooSmall,
    make_splits,
    split_questions,
    system_prompt,
    vocabulary,
)
from wavalign.world.teacher import HEARD_VOICES, heard_examples, heard_voice, imperfect_teacher

WORLD_VERSION = 2  # bump when tables, layout or schema change, so cached worlds are rebuilt
SAMPLE_RATE = 16000  # stored audio rate = WorldCodec.sample_rate, so encoding needs no resampling
HEARD = "heard"  # the optional evaluation split of new recordings of training questions


def world_splits(root: str | Path) -> tuple[str, ...]:
    """The splits a prepared world holds: train/val/test, plus heard when it was prepared with one."""
    return (*SPLITS, HEARD) if (Path(root) / f"{HEARD}.jsonl").is_file() else SPLITS


def question_audio(ex: Example) -> str:
    return f"audio/q_{ex.qid:05d}.wav"


def reply_audio(ex: Example) -> str:
    wrong = "_x" if ex.answer_wrong else ""
    return f"audio/a_{ex.qid:05d}_{ex.spoken_style}{wrong}.wav"


def heard_question_audio(ex: Example, index: int) -> str:
    return f"audio/h_{ex.qid:05d}_v{index % len(HEARD_VOICES)}.wav"


def to_row(ex: Example, question: str | None = None) -> dict[str, Any]:
    """One JSONL line in the reference schema (method.md), plus the world's extra keys; `question`: the path of
    the question audio when it is not the default recording (the heard split)."""
    row = {
        "messages": [{"role": "system", "content": system_prompt(ex.style)}, {"role": "user", "content": "<|audio|>"}],
        "audios": [question or question_audio(ex)],
        "sft_target_text": ex.reply_text,
        "sft_target_audio": reply_audio(ex),
        "task_type": "s2s",
        "question_text": ex.question_text,
        "reference_answer": ex.reference_answer,
        "style": ex.style,
        "family": ex.family,
        "qid": ex.qid,
    }
    if ex.answer_wrong:
        row["teacher_answer_wrong"] = True
    if ex.demo_style is not None:
        row["demo_style"] = ex.demo_style
    return row


def _espeak_version() -> str:
    out = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at:")[0].strip()


def manifest_settings(world: WorldSettings) -> dict[str, Any]:
    """What manifest.json records and a cached world must match: every setting that changes the world's bytes (so
    not `dir` or `workers`), plus the code's own version, audio rate, style table and espeak-ng version."""
    out = {
        "world_version": WORLD_VERSION,
        "seed": int(world.seed),
        "counts": {"train": int(world.n_train), "val": int(world.n_val), "test": int(world.n_test)},
        "num_codes": int(world.num_codes),
        "frame_ms": float(world.frame_ms),
        "sample_rate": SAMPLE_RATE,
        "max_fit_utterances": int(world.max_fit_utterances),
        "styles": {name: asdict(STYLES[name]) for name in WORLD_STYLES},
        "tts": _espeak_version(),
    }
    teacher = {"wrong_answer": world.teacher_wrong_answer, "wrong_style": world.teacher_wrong_style}
    if any(teacher.values()):  # only when set: today's default world keeps its manifest, so its cache stays valid
        out["teacher"] = {k: float(v) for k, v in sorted(teacher.items())}
    if world.n_heard:
        out["heard"] = {"examples": int(world.n_heard), "voices": [list(v) for v in HEARD_VOICES]}
    return out


Job = tuple[str, "str | SpeakingStyle", str]  # (text, style, espeak-ng voice)


def _synthesize_all(root: Path, jobs: dict[str, Job], workers: int, progress: ProgressLines | None = None) -> None:
    """Write every (relative path -> (text, style, voice)) WAV; espeak-ng runs as a subprocess, so threads
    parallelise. `progress` counts each written file."""

    def one(item: tuple[str, Job]) -> None:
        rel, (text, style, voice) = item
        wav, sr = synthesize(text, style, sample_rate=SAMPLE_RATE, voice=voice)
        write_wav(root / rel, wav, sr)
        if progress is not None:
            progress.advance()

    items = sorted(jobs.items(), key=lambda kv: kv[0])
    if workers <= 1:
        for item in items:
            one(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, items, chunksize=16))


def _fit_codebook(
    root: Path,
    train: list[Example],
    seed: int,
    num_codes: int,
    frame_ms: float,
    max_fit: int,
    progress: ProgressLines | None = None,
) -> None:
    paths = sorted({question_audio(e) for e in train} | {reply_audio(e) for e in train})
    if len(paths) > max_fit:
        paths = sorted(random.Random(f"wavalign-world-fit-{seed}").sample(paths, max_fit))
    wavs = []
    for rel in paths:
        wav, sr = read_wav(root / rel)
        if sr != SAMPLE_RATE:
            raise RuntimeError(f"{root / rel}: expected {SAMPLE_RATE} Hz audio, found {sr} Hz")
        wavs.append(wav)
    if progress is not None:
        progress.total = len(wavs)
    each = progress.advance if progress is not None else None
    codec = WorldCodec.fit(wavs, SAMPLE_RATE, num_codes=num_codes, frame_ms=frame_ms, seed=seed, each_analysed=each)
    codec.save(root / "codebook.npz")


def _examples(world: WorldSettings) -> dict[str, list[Example]]:
    """Every split's examples (the imperfect teacher's training demonstrations, the heard split when asked for); a
    count the questions cannot fill raises ValueError naming its setting."""
    counts = {"train": world.n_train, "val": world.n_val, "test": world.n_test}
    try:
        splits = make_splits(world.seed, *counts.values())
    except SplitTooSmall as e:
        raise ValueError(f"world setting n_{e.split}: {e}") from None
    splits["train"] = imperfect_teacher(
        splits["train"], world.teacher_wrong_answer, world.teacher_wrong_style, world.seed
    )
    if world.n_heard:
        splits[HEARD] = heard_examples(split_questions(world.seed)["train"], world.n_heard, world.seed)
    return splits


def content_hash(root: Path) -> str:
    """sha256 over the JSONL bytes, every WAV's bytes and the codebook's arrays (npz zip headers hold timestamps)."""
    h = hashlib.sha256()
    files = [root / f"{s}.jsonl" for s in world_splits(root)] + sorted((root / "audio").glob("*.wav"))
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    with np.load(root / "codebook.npz", allow_pickle=False) as z:
        for key in sorted(z.files):
            arr = np.ascontiguousarray(z[key])
            h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode() + arr.tobytes())
    return h.hexdigest()


def is_prepared(out_dir: str | Path, settings: dict[str, Any]) -> bool:
    root = Path(out_dir)
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    splits = (*SPLITS, HEARD) if "heard" in settings else SPLITS
    needed = [root / f"{s}.jsonl" for s in splits] + [root / "codebook.npz"]
    return manifest.get("settings") == settings and all(p.is_file() for p in needed)


def prepare_world(world: WorldSettings, verbose: bool = True) -> Path:
    """Build (or reuse) the world `world` describes in `world.dir`; returns the directory. Safe to call every time
    training starts. A value that cannot make a world raises ValueError naming its field, before anything is written.
    (world/teacher.py says why a teacher may be imperfect and what the heard split is; all 0 = today's world.)"""
    world.check()
    root = Path(world.dir)
    settings = manifest_settings(world)
    say = print if verbose else (lambda *a, **k: None)
    if is_prepared(root, settings):
        say(f"world: cached in {root} (manifest.json has the same settings); nothing to do")
        return root
    t0 = time.perf_counter()
    splits = _examples(world)  # validates the counts before touching the disk
    seed, workers = world.seed, world.workers
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").unlink(missing_ok=True)
    for pattern in ("q_*.wav", "a_*.wav", "h_*.wav"):
        for stale in (root / "audio").glob(pattern):
            stale.unlink()  # only our own naming pattern: the directory may hold other files
    for stale in (f"{HEARD}.jsonl", f"{HEARD}.codes.jsonl", f"{HEARD}.bench.jsonl"):
        (root / stale).unlink(missing_ok=True)

    jobs: dict[str, Job] = {}
    questions: dict[str, list[str]] = {}  # split -> question audio path per example
    for split, examples in splits.items():
        questions[split] = []
        for i, ex in enumerate(examples):
            if split == HEARD:
                voice, style = heard_voice(i)
                path, job = heard_question_audio(ex, i), (ex.question_text, style, voice)
            else:
                path, job = question_audio(ex), (ex.question_text, "neutral", ESPEAK_VOICE)
            questions[split].append(path)
            jobs[path] = job
            jobs[reply_audio(ex)] = (ex.reply_text, ex.spoken_style, ESPEAK_VOICE)
    say(f"world: synthesising {len(jobs)} utterances with espeak-ng ({workers} workers) ...", flush=True)
    _synthesize_all(root, jobs, workers, ProgressLines("world: synthesised", len(jobs)) if verbose else None)
    t1 = time.perf_counter()

    for split, examples in splits.items():
        lines = [json.dumps(to_row(ex, q), ensure_ascii=True) + "\n" for ex, q in zip(examples, questions[split])]
        (root / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    say(
        f"world: fitting a {world.num_codes}-code WORLD codebook ({world.frame_ms:g} ms frames) on training audio: "
        "WORLD analysis, then k-means ...",
        flush=True,
    )
    analysed = ProgressLines("world: analysed", 0) if verbose else None
    _fit_codebook(root, splits["train"], seed, world.num_codes, world.frame_ms, world.max_fit_utterances, analysed)
    t2 = time.perf_counter()

    manifest = {
        "settings": settings,
        "counts": {s: len(splits[s]) for s in splits},
        "questions": {s: len({e.qid for e in splits[s]}) for s in splits},
        "audio_files": len(jobs),
        "vocabulary_size": len(vocabulary()),
        "content_hash": content_hash(root),
    }
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(root / "manifest.json")
    say(
        f"world: wrote {root} in {t2 - t0:.1f} s (synthesis {t1 - t0:.1f} s, codebook {t2 - t1:.1f} s); "
        f"counts {manifest['counts']}"
    )
    return root
