"""VStyle (Zhan et al. 2025, voice style adaptation with spoken instructions), read from its metadata JSONL.

VStyle's evaluation toolkit describes each sample in a metadata.jsonl line with "id", "instruct_id", "ability"
(category/subcategory over acoustic attributes, natural-language instructions, role play and implicit empathy, e.g.
"instruction/variation") and "instruct_text" (the spoken instruction's transcript); response files add
"model_name". We read those fields and the instruction audio:

    {"id": 3801, "instruct_id": 381, "ability": "instruction/variation", "language": "en",
     "instruct_text": "Say 'good morning' as if you just won the lottery.", "instruct_audio": "audio/381.wav"}

instruct_text (required); ability (required, "category/subcategory"); id (optional, int or str);
instruct_audio | audio (optional): the spoken instruction, relative to the file (which key the released files use for
the audio could not be confirmed here, so both are accepted); language (optional): rows whose language differs from
the suite's `language` are skipped. VStyle has no reference answers: the instruction is both the question and the
requested style, and EQ comes from the configured judge (VStyle's own LALM judge scores 1-5 in the same spirit).
"""

from __future__ import annotations

from pathlib import Path

from wavalign.benchmarks.base import BenchmarkError, BenchmarkItem, audio_path, need_str, opt_str, read_rows, take

AUDIO_KEYS = ("instruct_audio", "audio")


def load_vstyle(
    path: str | Path, name: str, language: str | None = None, max_items: int | None = None
) -> list[BenchmarkItem]:
    path = Path(path)
    items = []
    for where, row in read_rows(path):
        if row.get("id") is not None and not isinstance(row["id"], (int, str)):
            raise BenchmarkError(f"{where}: field 'id' must be an integer or a string")
        ability = need_str(row, "ability", where)
        if ability.count("/") != 1 or not all(ability.split("/")):
            raise BenchmarkError(f"{where}: field 'ability' must be 'category/subcategory', got {ability!r}")
        row_language = opt_str(row, "language", where)
        if language is not None and row_language is not None and row_language != language:
            continue
        keys = [k for k in AUDIO_KEYS if row.get(k) is not None]
        if len(keys) > 1:
            raise BenchmarkError(f"{where}: give the instruction audio in one field, not in both {keys}")
        instruction = need_str(row, "instruct_text", where)
        items.append(
            BenchmarkItem(
                question=instruction,
                audio=audio_path(row[keys[0]], path.parent, where, keys[0]) if keys else None,
                references=(),
                benchmark=name,
                category=ability,
                style=instruction,
                source=where,
            )
        )
    if not items and language is not None:
        raise BenchmarkError(f"{path}: no items in language {language!r}")
    return take(items, max_items, path)
