"""worstchan/UltraChat-300K-SLAM-Omni: multi-turn, parquet shards data/train-*.parquet.

Columns, from k2-fsa/icefall's SLAM-Omni reader (egs/speech_llm/SPEECH2SPEECH, `process_batch_slam_omni` and
local/compute_whisper_fbank.py: --audio-key question_audio --text-key answer) and X-LANCE/SLAM-LLM
examples/s2s (speech_dataset_s2s.py): split_name, index, round (int: this turn's number), question (the dialogue so
far as text: earlier turns as "USER: ... ASSISTANT: ...", this turn after the last "<USER>:"), question_audio (Audio,
this turn only), answer (text), answer_cosyvoice_speech_token (list of CosyVoice tokens). Earlier turns become text
messages before the spoken one; the reply's speech is CosyVoice tokens only (--speech-codes cosyvoice, else
refused unless --text-only-target).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from wavalign.data.convert.common import ConvertError, Turn, code_list, decode_audio, need

NAME = "ultrachat_slam_omni"
DATASET = "worstchan/UltraChat-300K-SLAM-Omni"
CODES = "cosyvoice"
COLUMNS = ("split_name", "index", "round", "question", "question_audio", "answer", "answer_cosyvoice_speech_token")


def split_history(question: str, turns: int, where: str) -> tuple[list[dict[str, str]], str]:
    """(earlier turns as messages, this turn's question) from the question column; turns: the row's round."""
    earlier, _, current = question.rpartition("<USER>:")
    if not _:
        earlier, current = "", question
    pairs = [p for p in re.split(r"<?USER>?:", earlier) if p.strip()]
    history = []
    for pair in pairs:
        asked, sep, answered = pair.partition("ASSISTANT:")
        if not sep:
            raise ConvertError(f"{where}: column 'question': an earlier turn without 'ASSISTANT:' ({pair[:60]!r})")
        history += [
            {"role": "user", "content": asked.strip().strip("<>").strip()},
            {"role": "assistant", "content": answered.strip().strip("<>").strip()},
        ]
    if len(pairs) != turns - 1:
        raise ConvertError(
            f"{where}: column 'round' says turn {turns}, but 'question' holds {len(pairs)} earlier turns"
        )
    return history, current.strip()


def convert(where: str, row: dict[str, Any], base: Path) -> Turn:
    try:
        turns = int(row.get("round"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConvertError(f"{where}: column 'round' must be the turn number, got {row.get('round')!r}") from None
    history, current = split_history(need(row, "question", where), turns, where)
    return Turn(
        question_audio=decode_audio(need(row, "question_audio", where, object), where, "question_audio", base),
        question_text=current,
        answer_text=need(row, "answer", where),
        history=history,
        answer_codes=code_list(
            need(row, "answer_cosyvoice_speech_token", where, object), where, "answer_cosyvoice_speech_token"
        ),
        source_id=f"{row.get('split_name')}/{row.get('index')}/{turns}",
    )
