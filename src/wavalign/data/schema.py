"""Dialogue examples read from JSONL: the WavAlign reference schema and a plain prompt/demonstration schema.

Reference schema (method.md): {"messages": [...], "audios": [...], "sft_target_text": ..., "sft_target_audio": ...,
"task_type": "s2s", "question_text": ...}, optional "rejected_text"/"rejected_audio" (DPO), and our optional
"reference_answer" and "style", and optional pre-tokenized speech ("audio_codes": one code list per audio,
"sft_target_codes"), which then takes the place of encoding the files. Plain schema: {"prompt": ..., "reply": ...}, optionally with pre-tokenized speech
("prompt_speech": [[codes], ...] for the <|audio|> placeholders, "reply_speech": [codes]). Paths are relative to the
file. Every error names the file, the line and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

AUDIO_PLACEHOLDER = "<|audio|>"


class SchemaError(ValueError):
    pass


@dataclass
class DialogueExample:
    messages: list[dict[str, str]]
    target_text: str
    audios: list[Path] = field(default_factory=list)  # one per <|audio|> placeholder, in order
    prompt_speech: list[list[int]] | None = None  # pre-tokenized audio for the placeholders (instead of audios)
    target_audio: Path | None = None
    target_speech: list[int] | None = None  # pre-tokenized demonstration speech (instead of target_audio)
    question_text: str = ""
    reference_answer: str | None = None
    style: str | None = None
    rejected_text: str | None = None
    rejected_audio: Path | None = None
    source: str = ""  # "file:line", for error messages

    @property
    def num_placeholders(self) -> int:
        return sum(m["content"].count(AUDIO_PLACEHOLDER) for m in self.messages)


def _need(row: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in row:
        raise SchemaError(f"{where}: missing field '{key}'")
    value = row[key]
    if not isinstance(value, kind):
        raise SchemaError(f"{where}: field '{key}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _opt(row: dict[str, Any], key: str, kind: type, where: str) -> Any:
    return _need(row, key, kind, where) if row.get(key) is not None else None


def _path(base: Path, rel: Any, where: str, key: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise SchemaError(f"{where}: field '{key}' must hold non-empty file paths (strings), got {rel!r}")
    p = (base / rel).resolve()
    if not p.is_file():
        raise SchemaError(f"{where}: field '{key}' names {rel!r}, which does not exist (looked at {p})")
    return p


def _codes(value: Any, where: str, key: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise SchemaError(f"{where}: field '{key}' must be a list of non-negative integer codes")
    return value


def _target(row: dict[str, Any], key: str, where: str, need: bool) -> str:
    """The demonstration text: required for training data, optional in prompt files (predict)."""
    return _need(row, key, str, where) if need else _opt(row, key, str, where) or ""


def parse_reference(row: dict[str, Any], base: Path, where: str, need_target: bool = True) -> DialogueExample:
    messages = _need(row, "messages", list, where)
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise SchemaError(f"{where}: messages[{i}] must be an object with string 'role' and 'content'")
    audios = [_path(base, a, where, "audios") for a in _opt(row, "audios", list, where) or []]
    target_audio = _opt(row, "sft_target_audio", str, where)
    rejected_audio = _opt(row, "rejected_audio", str, where)
    audio_codes = row.get("audio_codes")
    if audio_codes is not None and (not isinstance(audio_codes, list) or len(audio_codes) != len(audios)):
        raise SchemaError(f"{where}: field 'audio_codes' must hold one code list per entry of 'audios'")
    target_codes = row.get("sft_target_codes")
    ex = DialogueExample(
        messages=messages,
        target_text=_target(row, "sft_target_text", where, need_target),
        prompt_speech=None
        if audio_codes is None
        else [_codes(c, where, f"audio_codes[{i}]") for i, c in enumerate(audio_codes)],
        target_speech=None if target_codes is None else _codes(target_codes, where, "sft_target_codes"),
        audios=audios,
        target_audio=_path(base, target_audio, where, "sft_target_audio") if target_audio else None,
        question_text=_opt(row, "question_text", str, where) or "",
        reference_answer=_opt(row, "reference_answer", str, where),
        style=_opt(row, "style", str, where),
        rejected_text=_opt(row, "rejected_text", str, where),
        rejected_audio=_path(base, rejected_audio, where, "rejected_audio") if rejected_audio else None,
        source=where,
    )
    if ex.num_placeholders != len(audios):
        raise SchemaError(f"{where}: {ex.num_placeholders} '{AUDIO_PLACEHOLDER}' placeholders but {len(audios)} audios")
    return ex


def parse_plain(row: dict[str, Any], where: str, need_target: bool = True) -> DialogueExample:
    prompt = _need(row, "prompt", str, where)
    speech = row.get("prompt_speech")
    prompt_speech = None
    if speech is not None:
        if not isinstance(speech, list):
            raise SchemaError(f"{where}: field 'prompt_speech' must be a list of code lists")
        prompt_speech = [_codes(s, where, f"prompt_speech[{i}]") for i, s in enumerate(speech)]
    reply_speech = row.get("reply_speech")
    ex = DialogueExample(
        messages=[{"role": "user", "content": prompt}],
        target_text=_target(row, "reply", where, need_target),
        prompt_speech=prompt_speech,
        target_speech=_codes(reply_speech, where, "reply_speech") if reply_speech is not None else None,
        question_text=_opt(row, "question_text", str, where) or prompt.replace(AUDIO_PLACEHOLDER, "").strip(),
        reference_answer=_opt(row, "reference_answer", str, where),
        style=_opt(row, "style", str, where),
        rejected_text=_opt(row, "rejected_text", str, where),
        source=where,
    )
    n = len(prompt_speech or [])
    if ex.num_placeholders != n:
        raise SchemaError(
            f"{where}: {ex.num_placeholders} '{AUDIO_PLACEHOLDER}' placeholders but {n} prompt_speech entries"
        )
    return ex


def read_jsonl_rows(
    path: str | Path, error: type[Exception] = SchemaError, what: str = "data", skipped: list[str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) per non-empty line of a JSONL file, where = "file:line"; a bad line raises `error` naming it,
    or, given a `skipped` list, is described there and reading goes on (check-data reports every line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            row = None
            try:
                row = json.loads(raw.decode("utf-8"))
                problem = None if isinstance(row, dict) else f"{where}: each line must be a JSON object"
            except UnicodeDecodeError as e:
                problem = f"{where}: not UTF-8 text ({e.reason} at byte {e.start})"
            except json.JSONDecodeError as e:
                problem = f"{where}: not valid JSON ({e.msg} at column {e.colno})"
            if problem is None:
                yield where, row
            elif skipped is None:
                raise error(problem)
            else:
                skipped.append(problem)


def parse_row(row: dict[str, Any], base: Path, where: str, need_target: bool = True) -> DialogueExample:
    """One row in either schema, decided by its keys; paths relative to `base`."""
    if "messages" in row:
        return parse_reference(row, base, where, need_target)
    if "prompt" in row:
        return parse_plain(row, where, need_target)
    raise SchemaError(f"{where}: neither the reference schema ('messages') nor the plain one ('prompt')")


def load_jsonl(path: str | Path, need_target: bool = True) -> list[DialogueExample]:
    """Read either schema, line by line; the schema is decided per line by its keys. need_target=False: prompt
    files (predict), where the demonstration ('sft_target_text' / 'reply') may be left out."""
    path = Path(path)
    out = [parse_row(row, path.parent, where, need_target) for where, row in read_jsonl_rows(path)]
    if not out:
        raise SchemaError(f"{path}: no examples")
    return out
