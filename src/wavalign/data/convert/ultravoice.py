"""tutu0604/UltraVoice: style-controlled spoken dialogue, JSONL metadata (ultravoice_train.jsonl,
ultravoice_test.jsonl) plus WAV folders wav/instructions/<dimension>/... and wav/responses/<dimension>/...

The file layout is the dataset's file listing (huggingface.co/datasets/tutu0604/UltraVoice, tree main); the card
does not spell out the JSONL's field names, so the names below are this converter's reading and each can be renamed
with `wavalign convert --rename FIELD=NAME`: key, instruction_text (the spoken request's transcript),
instruction_wav, response_text, response_wav (paths relative to the JSONL file), and the style control: dimension
(emotion, speed, volume, accent, language, composite, generalqa) and style (its value, e.g. "happy", "fast", "GB").
The style becomes the example's `style` as "<dimension>: <style>", for style judges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wavalign.data.convert.common import Turn, decode_audio, need

NAME = "ultravoice"
DATASET = "tutu0604/UltraVoice"
CODES = None
COLUMNS = ("key", "instruction_text", "instruction_wav", "response_text", "response_wav", "dimension", "style")


def convert(where: str, row: dict[str, Any], base: Path) -> Turn:
    dimension, style = need(row, "dimension", where), need(row, "style", where)
    return Turn(
        question_audio=decode_audio(need(row, "instruction_wav", where), where, "instruction_wav", base),
        question_text=need(row, "instruction_text", where),
        answer_text=need(row, "response_text", where),
        answer_audio=decode_audio(need(row, "response_wav", where), where, "response_wav", base),
        style=f"{dimension}: {style}",
        source_id=str(row.get("key")),
    )
