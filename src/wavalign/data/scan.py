"""check-data over any `data.sources` source: every row checked in one pass, nothing kept but the indices of the
rows that passed, so a dataset of any size is checked in constant memory. The per-row checks are check.py's."""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

from wavalign.data.check import DataReport, _audio_problems, example_problems
from wavalign.data.schema import SchemaError, parse_row
from wavalign.data.sources import LazyExamples, open_source


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
