"""VoiceBench (Chen et al. 2024, github.com/MatthewCYM/VoiceBench), one subset exported to JSONL.

VoiceBench is distributed as Hugging Face parquet (hlt-lab/voicebench, one config per subset;
`wavalign.benchmarks.export` writes it as JSONL + WAV) whose rows are {"audio": <Audio>, "prompt": str} plus, per subset, "reference" (sd-qa: the
answer text; openbookqa, mmsu: the letter A-D; bbh: yes / no / (A) / (B)), "id" (bbh: names the task) or "key",
"instruction_id_list", "kwargs" (ifeval). One subset a file, a row a line, the audio as a path:

    {"prompt": "Who wrote Hamlet?", "audio": "audio/sdqa_0.wav", "reference": "William Shakespeare"}
    {"prompt": "Is the following sentence plausible? ...", "audio": "audio/bbh_3.wav", "reference": "no",
     "id": "sports_understanding_12"}

prompt (required): the instruction's transcript. audio (optional): a path or {"path": ...}, relative to the file.
subset (required): decides the official scorer (`benchmarks.tally`) and what each row must hold; rows that
scorer could not score are refused here. mtbench is refused: VoiceBench ships no evaluator for it. The sub-category
is the row's "category" or "split" (e.g. the sd-qa region), else the subset. skip_unsupported (ifeval only): drop
the rows whose instructions are not checked here (`ifeval.UNSUPPORTED`) with a warning; the rest is then the subset
"ifeval_partial", logged under that name and left out of the leaderboard overall, since it is not comparable.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from wavalign.benchmarks.base import BenchmarkError, BenchmarkItem, audio_path, need_str, opt_str, read_rows, take
from wavalign.benchmarks.ifeval import IfevalError, UnsupportedInstruction, instruction_args
from wavalign.benchmarks.voicebench_rules import BBH_TASKS, bbh_reference, bbh_task

CHOICE_SUBSETS = ("openbookqa", "mmsu")
OPEN_SUBSETS = ("alpacaeval", "alpacaeval_full", "alpacaeval_speaker", "commoneval", "wildvoice")
SUBSETS = OPEN_SUBSETS + ("sd-qa", "mmsu", "openbookqa", "bbh", "ifeval", "advbench")
REFUSED = {"mtbench": "VoiceBench has no evaluator for its multi-turn mtbench subset (evaluate.py offers none)"}


def _row_id(row: dict[str, Any], key: str, where: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        raise BenchmarkError(f"{where}: field '{key}' must be an integer or a string, got {value!r}")
    return str(value)


def _check_row(subset: str, row: dict[str, Any], reference: str | None, where: str) -> dict[str, Any]:
    """What the subset's scorer needs from the row, or an error naming the field."""
    extra: dict[str, Any] = {}
    if subset in CHOICE_SUBSETS and (reference is None or reference not in ("A", "B", "C", "D")):
        raise BenchmarkError(
            f"{where}: field 'reference' must be one choice letter A-D in subset {subset}, got {reference!r}"
        )
    if subset == "sd-qa" and reference is None:
        raise BenchmarkError(f"{where}: missing field 'reference' (subset sd-qa)")
    if subset == "bbh":
        if reference is None or bbh_reference(reference) is None:
            raise BenchmarkError(
                f"{where}: field 'reference' must be yes, no, (A) or (B) in subset bbh, got {reference!r}"
            )
        extra["row_id"] = _row_id(row, "id", where)
        if extra["row_id"] is None or bbh_task(extra["row_id"]) is None:
            raise BenchmarkError(f"{where}: field 'id' must name a bbh task ({list(BBH_TASKS)}), got {row.get('id')!r}")
    if subset == "ifeval":
        try:
            extra["instructions"] = tuple(instruction_args(row.get("instruction_id_list"), row.get("kwargs"), where))
        except IfevalError as e:
            raise BenchmarkError(str(e)) from e
        extra["row_id"] = _row_id(row, "key", where)
    return extra


def load_voicebench(
    path: str | Path, name: str, subset: str | None = None, max_items: int | None = None, skip_unsupported: bool = False
) -> list[BenchmarkItem]:
    path = Path(path)
    if subset in REFUSED:
        raise BenchmarkError(f"{path}: subset {subset!r} is not supported: {REFUSED[subset]}")
    if subset not in SUBSETS:
        raise BenchmarkError(f"{path}: VoiceBench needs 'subset', one of {list(SUBSETS)}; got {subset!r}")
    if skip_unsupported and subset != "ifeval":
        raise BenchmarkError(f"{path}: skip_unsupported only applies to subset ifeval, not {subset!r}")
    items, skipped = [], []
    for where, row in read_rows(path):
        if row.get("reference") is not None and not isinstance(row["reference"], str):
            raise BenchmarkError(f"{where}: field 'reference' must be a string, got {type(row['reference']).__name__}")
        reference = opt_str(row, "reference", where)
        try:
            extra = _check_row(subset, row, reference, where)
        except BenchmarkError as e:
            if skip_unsupported and isinstance(e.__cause__, UnsupportedInstruction):
                skipped.append(where.rsplit(":", 1)[-1])
                continue
            raise
        items.append(
            BenchmarkItem(
                question=need_str(row, "prompt", where),
                audio=audio_path(row["audio"], path.parent, where, "audio") if row.get("audio") is not None else None,
                references=(reference,) if reference else (),
                benchmark=name,
                category=opt_str(row, "category", where) or opt_str(row, "split", where) or subset,
                answer_type="choice" if subset in CHOICE_SUBSETS else "text",
                source=where,
                kind="voicebench",
                subset=subset,
                row_id=extra.get("row_id"),
                instructions=extra.get("instructions", ()),
            )
        )
    if skipped:
        warnings.warn(
            f"{path}: skipped {len(skipped)} ifeval rows with instructions not checked here (lines "
            f"{', '.join(skipped[:10])}{' ...' if len(skipped) > 10 else ''}); the other {len(items)} are "
            "logged as eval/voicebench/ifeval_partial, not comparable with the leaderboard",
            stacklevel=2,
        )
        items = [replace(it, subset="ifeval_partial") for it in items]
    return take(items, max_items, path)
