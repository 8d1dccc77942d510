"""What every converter shares: one converted dialogue turn, decoding a dataset's own audio column, and the writer of
the template's reference schema (`data.schema`): <out>/data.jsonl plus <out>/audio/<row>_{q,a}.wav.

Audio is decoded from the dataset's own column (embedded bytes, as a `datasets` Audio column stores them in parquet,
or a file path) with soundfile, and written as 16-bit PCM WAV at its own sample rate; the codec resamples at load.
Speech given only as discrete codes of another model's tokenizer (VoiceAssistant-400K's SNAC codes, the SLAM-Omni
sets' CosyVoice tokens) is kept only when the user says the policy speaks those codes (`--speech-codes`); otherwise
the converter stops and says what to do, since codes of one tokenizer are noise to another.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from wavalign.data.schema import AUDIO_PLACEHOLDER


class ConvertError(ValueError):
    pass


@dataclass
class Audio:
    """Decoded audio: a mono float32 waveform and its rate."""

    wav: np.ndarray
    rate: int


@dataclass
class Turn:
    """One training example in the making: the spoken question (and earlier turns as text), the reply."""

    question_audio: Audio
    question_text: str
    answer_text: str
    history: list[dict[str, str]] = field(default_factory=list)  # earlier turns, text only
    answer_audio: Audio | None = None
    answer_codes: list[int] | None = None  # discrete speech of `codes_kind`'s tokenizer
    user_prefix: str = ""  # text before the spoken question in the user turn (e.g. "Repeat after me: ")
    reference_answer: str | None = None
    style: str | None = None
    source_id: str | None = None


def decode_audio(value: Any, where: str, column: str, base: Path) -> Audio:
    """The dataset's own audio: {"bytes", "path"} (a datasets Audio column), raw bytes, or a path relative to base."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    try:
        if isinstance(value, (bytes, bytearray)) and value:
            wav, rate = sf.read(io.BytesIO(bytes(value)), dtype="float32", always_2d=True)
        elif isinstance(value, str) and value:
            path = (base / value).resolve()
            if not path.is_file():
                raise ConvertError(
                    f"{where}: column '{column}' names {value!r}, which does not exist (looked at {path})"
                )
            wav, rate = sf.read(str(path), dtype="float32", always_2d=True)
        else:
            raise ConvertError(f"{where}: column '{column}' holds no audio (got {type(value).__name__})")
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise ConvertError(f"{where}: column '{column}' could not be decoded as audio: {e}") from None
    if wav.shape[0] == 0:
        raise ConvertError(f"{where}: column '{column}' holds no samples")
    return Audio(np.ascontiguousarray(wav.mean(axis=1), dtype=np.float32), int(rate))


def need(row: dict[str, Any], column: str, where: str, kind: type = str) -> Any:
    """A column the layout must have, of the given type (an error names the file, row and column)."""
    if column not in row:
        raise ConvertError(f"{where}: missing column '{column}' (the row has {sorted(row)})")
    value = row[column]
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise ConvertError(f"{where}: column '{column}' must be a non-empty {kind.__name__}, got {value!r}")
    return value.strip() if kind is str else value


def code_list(value: Any, where: str, column: str) -> list[int]:
    """Discrete speech codes: a list of ints, or a string of integers (VoiceAssistant's answer_snac, '#'-separated
    frames), read in order."""
    if isinstance(value, str):
        codes = [int(c) for c in re.findall(r"\d+", value)]
    elif isinstance(value, (list, tuple)) and all(isinstance(c, int) and not isinstance(c, bool) for c in value):
        codes = list(value)
    else:
        raise ConvertError(f"{where}: column '{column}' must hold speech codes (integers), got {type(value).__name__}")
    if not codes:
        raise ConvertError(f"{where}: column '{column}' holds no speech codes")
    return codes


class Writer:
    """Writes converted turns as reference-schema rows. codes_kind: the tokenizer of the layout's code columns;
    speech_codes: the tokenizer the policy speaks (from --speech-codes), None when not said; text_only_target:
    leave code-only demonstration speech out instead."""

    def __init__(
        self, out_dir: str | Path, layout: str, codes_kind: str | None, speech_codes: str | None, text_only_target: bool
    ) -> None:
        self.out, self.layout = Path(out_dir), layout
        self.codes_kind, self.speech_codes, self.text_only = codes_kind, speech_codes, text_only_target
        if codes_kind is not None and not text_only_target and speech_codes != codes_kind:
            said = f"--speech-codes {speech_codes}" if speech_codes else "no --speech-codes"
            raise ConvertError(
                f"{layout}: its reply speech is given only as {codes_kind} codes, and you gave {said}. A policy "
                f"whose speech tokenizer is not {codes_kind} cannot use them (they would be read as its own codes). "
                f"Either pass --speech-codes {codes_kind} if the policy speaks {codes_kind} codes, or "
                "--text-only-target to keep the spoken questions and the reply texts without demonstration speech "
                f"(or decode the codes to audio with {codes_kind}'s decoder and convert those WAV files instead)."
            )
        (self.out / "audio").mkdir(parents=True, exist_ok=True)
        self.path = self.out / "data.jsonl"
        self._file = open(self.path, "w", encoding="utf-8")
        self.count = 0

    def _wav(self, audio: Audio, name: str) -> str:
        rel = f"audio/{name}.wav"
        sf.write(self.out / rel, audio.wav, audio.rate, subtype="PCM_16")
        return rel

    def add(self, turn: Turn) -> None:
        n = f"{self.count:07d}"
        row: dict[str, Any] = {
            "messages": [*turn.history, {"role": "user", "content": turn.user_prefix + AUDIO_PLACEHOLDER}],
            "audios": [self._wav(turn.question_audio, n + "_q")],
            "sft_target_text": turn.answer_text,
            "task_type": "s2s",
            "question_text": turn.question_text,
        }
        if turn.answer_audio is not None:
            row["sft_target_audio"] = self._wav(turn.answer_audio, n + "_a")
        elif turn.answer_codes is not None and not self.text_only:
            row["sft_target_codes"] = turn.answer_codes
        for key, value in (("reference_answer", turn.reference_answer), ("style", turn.style)):
            if value is not None:
                row[key] = value
        row["origin"] = {"layout": self.layout, "id": turn.source_id}
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1

    def close_file(self) -> None:
        self._file.close()
