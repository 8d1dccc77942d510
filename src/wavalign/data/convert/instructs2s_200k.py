"""InstructS2S-200K (LLaMA-Omni's set, ICTNLP/InstructS2S-200K) in its parquet form yuekai/InstructS2S-200K.

Columns, from code that loads yuekai/InstructS2S-200K with `datasets` (its cast_column("question_audio") and
cast_column("answer_audio") calls and its filter on "round"): round, question (text), question_audio (Audio: the
speech instruction), answer (text reply), answer_audio (Audio: the speech reply). Both sides are audio, so the
demonstration speech is the reply's own recording and no codes are involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wavalign.data.convert.common import Turn, decode_audio, need

NAME = "instructs2s_200k"
DATASET = "yuekai/InstructS2S-200K (parquet of ICTNLP/InstructS2S-200K)"
CODES = None
COLUMNS = ("round", "question", "question_audio", "answer", "answer_audio")


def convert(where: str, row: dict[str, Any], base: Path) -> Turn:
    return Turn(
        question_audio=decode_audio(need(row, "question_audio", where, object), where, "question_audio", base),
        question_text=need(row, "question", where),
        answer_text=need(row, "answer", where),
        answer_audio=decode_audio(need(row, "answer_audio", where, object), where, "answer_audio", base),
        source_id=str(row.get("round")),
    )
