"""VStyle (Zhan et al. 2025, github.com/alibaba/vstyle): spoken style instructions, read from its metadata JSONL.

Upstream rows carry "id", "instruct_id", "ability" ("category/subcategory", one of `ABILITIES`: upstream's
SUB_CATS in lalm_eval/gemini_eval.py) and "instruct_text" (the spoken instruction's transcript); the Hugging Face
release (zhanjun/VStyle, an audio folder per language) names the instruction audio in "file_name", relative to the
metadata file:

    {"id": 3801, "instruct_id": 381, "ability": "instruction/variation", "instruct_text": "Say ...",
     "file_name": "wav/381.wav"}

The audio may also be given as "instruct_audio" or "audio" (a path or {"path": ...}); a row must have it in exactly one
of `AUDIO_KEYS`: VStyle's instructions are spoken, so a row without them is an error, never a text-only prompt.
language (optional): rows whose language differs from the suite's `language` are skipped. VStyle has no reference
answers: each reply is judged by `judges.official.VStyleJudge` with its category's prompt.
"""

from __future__ import annotations

from pathlib import Path

from wavalign.benchmarks.base import BenchmarkError, BenchmarkItem, audio_path, need_str, opt_str, read_rows, take

AUDIO_KEYS = ("file_name", "instruct_audio", "audio")
SUB_CATS = {
    "acoustic_attributes": ("age", "speed", "gender", "emotion", "pitch", "volume", "composite_properties"),
    "instruction": ("emotion", "variation", "style"),
    "role_play": ("character", "scenario"),
    "empathy": ("anger", "sadness_disappointment", "anxiety_fear", "joy_excitement"),
}
ABILITIES = tuple(f"{cat}/{sub}" for cat, subs in SUB_CATS.items() for sub in subs)


def load_vstyle(
    path: str | Path, name: str, language: str | None = None, max_items: int | None = None
) -> list[BenchmarkItem]:
    path = Path(path)
    items = []
    for where, row in read_rows(path):
        if row.get("id") is None or not isinstance(row["id"], (int, str)) or isinstance(row["id"], bool):
            raise BenchmarkError(f"{where}: field 'id' must be an integer or a string, got {row.get('id')!r}")
        ability = need_str(row, "ability", where)
        if ability not in ABILITIES:
            raise BenchmarkError(f"{where}: field 'ability' must be one of VStyle's {list(ABILITIES)}, got {ability!r}")
        row_language = opt_str(row, "language", where)
        if language is not None and row_language is not None and row_language != language:
            continue
        keys = [k for k in AUDIO_KEYS if row.get(k) is not None]
        if len(keys) != 1:
            what = f"in one field, not in all of {keys}" if keys else f"in one of {list(AUDIO_KEYS)}"
            raise BenchmarkError(f"{where}: give the instruction audio {what} (the row has fields {sorted(row)})")
        instruction = need_str(row, "instruct_text", where)
        items.append(
            BenchmarkItem(
                question=instruction,
                audio=audio_path(row[keys[0]], path.parent, where, keys[0]),
                references=(),
                benchmark=name,
                category=ability,
                style=instruction,
                source=where,
                kind="vstyle",
                row_id=str(row["id"]),
            )
        )
    if not items and language is not None:
        raise BenchmarkError(f"{path}: no items in language {language!r}")
    return take(items, max_items, path)
