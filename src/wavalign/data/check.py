"""Validate a dataset before a long run: every problem of every line, not just the first, as file:line: field: what.

`python -m wavalign check-data FILE [FILE ...] [--config CFG] [--no-audio]` prints them and exits 1 if any;
`fit` runs the cheap checks on its data at start-up (and decodes every audio file with `data.check_audio: true`), so
a corrupt file fails before step 1, not hours in. A sample rate other than the codec's is a note, not a problem:
the codec resamples. With `--config`, the config's policy and codec are built and every row also goes through the
checks `fit` runs against them (wavalign.data.row_limits: length in the policy's tokens against the model's context
and `data.max_tokens`, audio the config can encode), so the two refuse the same rows.
"""

from __future__ import annotations

import argparse
import json
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from wavalign.data.row_checker import row_checker
from wavalign.data.schema import DialogueExample, SchemaError, parse_row, read_jsonl_rows
from wavalign.data.sources import LazyExamples, open_source

MIN_SECONDS, MAX_SECONDS = 0.05, 120.0
# No spoken turn is longer: 120 s of speech is ~2,000 characters. A text beyond this is a data error (a whole
# document pasted into one field), and tokenizing and training on it can take tens of GB at once.
MAX_TEXT_CHARS = 20_000


@dataclass
class DataReport:
    parsed: dict[Path, list[DialogueExample]] = field(default_factory=dict)  # per file: what loaded (fit reuses it)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return sum(len(v) for v in self.parsed.values())

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, paths: Sequence[str | Path]) -> str:
        head = f"check-data: {self.examples} examples in {', '.join(map(str, paths))}: {len(self.problems)} problem(s)"
        return "\n".join([head, *self.problems, *(f"note: {n}" for n in self.notes)])


def _audio_problems(
    path: Path, where: str, key: str, decode: bool, sample_rate: int | None, notes: list[str]
) -> list[str]:
    """A file's header (cheap: format, rate, length) or, with decode, every sample."""
    import numpy as np
    import soundfile as sf

    from wavalign.audio.io import read_wav

    try:
        if decode:
            wav, sr = read_wav(path)
            seconds = len(wav) / sr if sr else 0.0
            if not np.isfinite(wav).all():
                return [f"{where}: {key}: {path.name} holds NaN or infinite samples"]
        else:
            info = sf.info(str(path))
            sr, seconds = int(info.samplerate), float(info.duration)
    except (ValueError, FileNotFoundError, RuntimeError, sf.LibsndfileError) as e:
        why = str(e) if str(e).startswith(("cannot read", "audio file")) else f"cannot read audio file {path}: {e}"
        return [f"{where}: {key}: {why}"]
    out = []
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        out.append(f"{where}: {key}: {path.name} lasts {seconds:.2f} s, outside [{MIN_SECONDS}, {MAX_SECONDS}] s")
    if sample_rate is not None and sr != sample_rate:
        notes.append(f"{where}: {key}: {path.name} is {sr} Hz; it is resampled to the codec's {sample_rate} Hz")
    return out


def example_problems(ex: DialogueExample, num_speech_tokens: int | None = None) -> list[str]:
    """What is wrong with one parsed example beyond its schema: empty texts, codes outside the vocabulary."""
    out = []
    if not ex.target_text.strip():
        out.append(f"{ex.source}: sft_target_text: empty demonstration text")
    if not any(m["content"].strip() for m in ex.messages):
        out.append(f"{ex.source}: messages: every message is empty")
    texts = [("sft_target_text", ex.target_text), ("rejected_text", ex.rejected_text or "")]
    texts += [(f"messages[{i}]", m["content"]) for i, m in enumerate(ex.messages)]
    for key, text in texts:
        if len(text) > MAX_TEXT_CHARS:
            out.append(f"{ex.source}: {key}: {len(text):,} characters, more than {MAX_TEXT_CHARS:,} (a spoken turn)")
    return out + (code_problems(ex, num_speech_tokens) if num_speech_tokens is not None else [])


def code_problems(ex: DialogueExample, num_speech_tokens: int) -> list[str]:
    """Pre-tokenized speech codes outside the policy's speech vocabulary, one line per code list."""
    code_lists = [("audio_codes", c) for c in ex.prompt_speech or []]
    code_lists += [("sft_target_codes", ex.target_speech)] if ex.target_speech is not None else []
    out = []
    for key, codes in code_lists:
        bad = [c for c in codes if not 0 <= c < num_speech_tokens]
        if bad:
            out.append(f"{ex.source}: {key}: code {bad[0]} outside the policy's {num_speech_tokens} speech tokens")
    return out


def check_file(
    path: str | Path,
    decode_audio: bool = True,
    num_speech_tokens: int | None = None,
    sample_rate: int | None = None,
    report: DataReport | None = None,
) -> DataReport:
    """Every line of one JSONL file in either schema; problems are collected, never raised. Audio files always
    have their header read; decode_audio reads every sample too."""
    report = report or DataReport()
    path = Path(path)
    if not path.is_file():
        report.problems.append(f"{path}: file does not exist")
        return report
    report.parsed[path] = parsed = []
    problems_before = len(report.problems)
    for where, row in read_jsonl_rows(path, skipped=report.problems):
        try:
            ex = parse_row(row, path.parent, where)
        except SchemaError as e:
            report.problems.append(str(e))
            continue
        parsed.append(ex)
        report.problems += example_problems(ex, num_speech_tokens)
        files = [("audios", a) for a in ex.audios] + [("sft_target_audio", ex.target_audio)] * (
            ex.target_audio is not None
        )
        for key, audio in files:
            report.problems += _audio_problems(audio, where, key, decode_audio, sample_rate, report.notes)
    if not parsed and len(report.problems) == problems_before:  # this file's own problems, not an earlier file's
        report.problems.append(f"{path}: no examples")
    return report


def check_files(paths: Iterable[str | Path], **kwargs: Any) -> DataReport:
    """Several sources (JSONL, parquet, a saved dataset, hub:NAME: `data.sources`) into one report, each checked
    row by row in constant memory (`check_source`); a source named twice (val and test alike) is read once."""
    report = DataReport()
    for p in dict.fromkeys(map(str, paths)):
        check_source(p, report=report, **kwargs)
    return report


def check_source(
    spec: str | Path,
    decode_audio: bool = True,
    num_speech_tokens: int | None = None,
    sample_rate: int | None = None,
    report: DataReport | None = None,
    need_target: bool = True,
) -> DataReport:
    """Every row of one source (a JSONL file, parquet, a saved dataset, hub:NAME); problems are collected, never
    raised. report.parsed[Path(spec)] becomes a LazyExamples over the rows that passed."""
    report = report or DataReport()
    try:
        source = open_source(spec)
    except (FileNotFoundError, SchemaError) as e:
        report.problems.append(str(e))
        return report
    before, good, bad = len(report.problems), array("q"), 0  # 8 bytes a passing row
    for i, where, row, problem in source.scan():
        if problem is None:
            try:
                ex = parse_row(row, source.base, where, need_target)
            except SchemaError as e:
                problem = str(e)
        if problem is not None:
            report.problems.append(problem)
            bad += 1
            continue
        good.append(i)
        report.problems += example_problems(ex, num_speech_tokens)
        files = [("audios", a) for a in ex.audios]
        files += [("sft_target_audio", ex.target_audio)] if ex.target_audio is not None else []
        for key, audio in files:
            report.problems += _audio_problems(audio, where, key, decode_audio, sample_rate, report.notes)
    indices = None if not bad else np.frombuffer(good, dtype=np.int64)
    report.parsed[Path(spec)] = LazyExamples(source, indices, need_target)
    if not good and len(report.problems) == before:
        report.problems.append(f"{spec}: no examples")
    return report


def _policy_settings(config: str | None) -> tuple[int | None, int | None]:
    """(num_speech_tokens, codec sample rate) read from a training config's YAML, where it says them."""
    if config is None:
        return None, None
    import yaml

    with open(config, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    model = cfg.get("model") or {}
    policy_args = (model.get("policy") or {}).get("init_args") or {}
    codec_args = (model.get("codec") or {}).get("init_args") or {}
    return policy_args.get("num_speech_tokens"), codec_args.get("sample_rate")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wavalign check-data", description=__doc__.splitlines()[0])
    parser.add_argument(
        "files",
        nargs="+",
        help="datasets in the reference or plain schema: JSONL files, parquet files or globs, save_to_disk folders, "
        "hub:NAME[:CONFIG[:SPLIT]]",
    )
    parser.add_argument(
        "--config",
        help="a training config: its policy and codec are built and every row checked against them as `fit` does",
    )
    parser.add_argument("--no-audio", action="store_true", help="read only the audio files' headers, not every sample")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    tokens, rate = _policy_settings(args.config)
    report = check_files(args.files, decode_audio=not args.no_audio, num_speech_tokens=tokens, sample_rate=rate)
    checker = None
    if args.config:
        try:
            checker = row_checker(args.config)
        except (Exception, SystemExit) as e:  # a partial config (the policy's vocabulary alone) still checks codes
            why = " ".join(str(e).split())[:300]
            report.notes.append(
                f"{args.config}: no module could be built from it ({type(e).__name__}: {why}); only the speech-code "
                "and sample-rate checks used it, not fit's start-up checks (lengths, encodable audio)"
            )
    if checker is not None:  # fit's start-up checks, on the rows with no problem yet
        failed = {p.split(": ", 1)[0] for p in report.problems}
        rows = (ex for exs in report.parsed.values() for ex in exs if ex.source not in failed)  # row by row
        report.problems = list(dict.fromkeys(report.problems + checker(rows)))
    if args.json:
        print(json.dumps({"examples": report.examples, "problems": report.problems, "notes": report.notes}, indent=1))
    else:
        print(report.summary(args.files))
    return 0 if report.ok else 1
