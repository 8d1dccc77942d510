"""Replies produced outside the template, read in the official evaluators' own layouts, for `wavalign score`.

- VStyle (alibaba/vstyle lalm_eval/gemini_eval.py reads it; data/examples/model_res/en/metadata.jsonl is upstream's
  example): one JSON object a line with "id", "ability", "instruct_text", "model_name", "response_audio_path" (the
  spoken reply, MP3 or WAV, relative to `audio_root`, by default the file's folder: upstream's --root_dir),
  "response_text", "instruct_id" and optionally "instruction_audio_path". As upstream, a repeated id keeps its first
  row. Upstream scores one model a file; a file that names several is refused.
- VoiceBench (MatthewCYM/VoiceBench main.py writes `<model>-<subset>-<split>-<modality>.jsonl`): the subset's rows
  (hlt-lab/voicebench columns but the audio) with the model's "response" added. Every line counts, as in
  evaluate.py. The subset is given, since a subset name may itself hold the filename's '-'.

Bad input is an error naming the file and line: a missing field, an unknown ability or subset, a reply row with no
audio, an audio file that is missing or cannot be decoded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wavalign.benchmarks.base import BenchmarkError, BenchmarkItem, need_str, read_rows
from wavalign.benchmarks.voicebench import load_voicebench
from wavalign.benchmarks.vstyle import ABILITIES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredReply:
    """One reply to score: the benchmark item it answers, its text and (VStyle) its decoded audio."""

    item: BenchmarkItem
    text: str
    audio: np.ndarray | None = None
    sample_rate: int = 0
    audio_path: Path | None = None
    model_name: str | None = None


def _row_id(row: dict[str, Any], where: str) -> str:
    value = row.get("id")
    if value is None or isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BenchmarkError(f"{where}: field 'id' must be an integer or a string, got {value!r}")
    return str(value)


def _audio(root: Path, rel: Any, where: str, key: str) -> tuple[Path, np.ndarray, int]:
    from wavalign.audio.io import read_wav

    if not isinstance(rel, str) or not rel.strip():
        raise BenchmarkError(f"{where}: field '{key}' is empty: the reply row has no audio to judge")
    path = (root / rel.strip()).resolve()
    if not path.is_file():
        raise BenchmarkError(f"{where}: field '{key}' names {rel!r}, which does not exist (looked at {path})")
    try:
        wav, rate = read_wav(path)
    except ValueError as e:
        raise BenchmarkError(f"{where}: field '{key}': {e}") from None
    if wav.size == 0:
        raise BenchmarkError(f"{where}: field '{key}': {path.name} holds no samples")
    return path, wav, rate


def read_vstyle_replies(path: str | Path, audio_root: str | Path | None = None) -> list[ScoredReply]:
    """VStyle's response metadata (module docstring), first row per id, audio decoded."""
    path = Path(path)
    root = Path(audio_root) if audio_root is not None else path.parent
    out, seen, models = [], set(), {}
    for where, row in read_rows(path):
        row_id = _row_id(row, where)
        ability = need_str(row, "ability", where)
        if ability not in ABILITIES:
            raise BenchmarkError(f"{where}: field 'ability' must be one of VStyle's {list(ABILITIES)}, got {ability!r}")
        if row_id in seen:  # upstream's remove_duplicates_from_tasks: the first occurrence stays
            logger.warning("%s: id %s repeats an earlier row; kept the first, as VStyle does", where, row_id)
            continue
        seen.add(row_id)
        model = need_str(row, "model_name", where)
        models.setdefault(model, where)
        instruction = need_str(row, "instruct_text", where)
        audio_path, wav, rate = _audio(root, row.get("response_audio_path"), where, "response_audio_path")
        spoken = row.get("instruction_audio_path")
        item = BenchmarkItem(
            question=instruction,
            audio=_audio(root, spoken, where, "instruction_audio_path")[0] if spoken else None,
            references=(),
            benchmark="vstyle",
            category=ability,
            style=instruction,
            source=where,
            kind="vstyle",
            row_id=row_id,
        )
        text = row.get("response_text") if isinstance(row.get("response_text"), str) else ""
        out.append(ScoredReply(item, text, wav, rate, audio_path, model))
    if not out:
        raise BenchmarkError(f"{path}: no replies")
    if len(models) > 1:
        raise BenchmarkError(
            f"{path}: replies of {len(models)} models ({', '.join(f'{m} from {w}' for m, w in models.items())}); "
            "VStyle scores one model a file (and drops a repeated id across models): split the file per model_name"
        )
    return out


def read_voicebench_replies(path: str | Path, subset: str) -> list[ScoredReply]:
    """A VoiceBench main.py output for one subset; each row's "response" is the reply."""
    path = Path(path)
    items = load_voicebench(path, "voicebench", subset)  # refuses an unknown subset and rows its scorer cannot use
    out = []
    for item, (where, row) in zip(items, read_rows(path)):
        response = row.get("response")
        if not isinstance(response, str):
            raise BenchmarkError(
                f"{where}: field 'response' must be the model's reply text (VoiceBench main.py output), "
                f"got {response!r}"
            )
        out.append(ScoredReply(item, response))
    return out
