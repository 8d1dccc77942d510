"""gpt-omni/VoiceAssistant-400K (Mini-Omni's set): single-turn, parquet shards data/train-*.parquet.

Columns, from the dataset card's `dataset_info` (huggingface.co/datasets/gpt-omni/VoiceAssistant-400K README.md):
split_name, index, round (strings), question (text), question_audio (Audio), answer (text), answer_snac (string:
the reply's SNAC codes, '#'-separated frames of 7 space-separated codes, as third-party readers of the set split it;
kept as one flat list in frame order). The reply has no audio, only SNAC codes: kept as sft_target_codes with --speech-codes snac,
else refused (common.Writer) unless --text-only-target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wavalign.data.convert.common import Turn, code_list, decode_audio, need

NAME = "voiceassistant_400k"
DATASET = "gpt-omni/VoiceAssistant-400K"
CODES = "snac"
COLUMNS = ("split_name", "index", "round", "question", "question_audio", "answer", "answer_snac")


def convert(where: str, row: dict[str, Any], base: Path) -> Turn:
    return Turn(
        question_audio=decode_audio(need(row, "question_audio", where, object), where, "question_audio", base),
        question_text=need(row, "question", where),
        answer_text=need(row, "answer", where),
        answer_codes=code_list(need(row, "answer_snac", where, object), where, "answer_snac"),
        source_id=f"{row.get('split_name')}/{row.get('index')}/{row.get('round')}",
    )
