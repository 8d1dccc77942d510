"""What every benchmark loader returns, the JSONL reading they share, and how a reply is checked against references.

Loaders turn each benchmark's own file layout into `BenchmarkItem`s, so the evaluation callback never needs to know
which benchmark an item came from. Every error names the file, the line and the field, because benchmark files are
usually converted by hand from another format and the first run is where the mistakes show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from wavalign.data.schema import AUDIO_PLACEHOLDER, DialogueExample, read_jsonl_rows
from wavalign.judges.rules import ends_with_answer, words

ANSWER_TYPES = ("text", "final", "choice")
CHOICE_LETTERS = "ABCDEFGHIJ"  # MMLU-Pro-derived sets (VoiceBench's mmsu) go up to ten options


class BenchmarkError(ValueError):
    pass


@dataclass(frozen=True)
class BenchmarkItem:
    """One evaluation prompt.

    question: the question / instruction as text (the judge reads it; it is the user turn when there is no audio).
    audio: the spoken question (encoded with the module's codec), or None for a text-only item.
    references: acceptable answers; empty for open-ended items (these count toward IQ only through an IQ judge).
    answer_type: 'text' (every word of a reference must appear in the reply), 'final' (the reply must end with a
    reference: for replies that restate the question, which may hold every candidate) or 'choice' (a letter).
    style: the requested speaking style, where the benchmark asks for one.
    system_prompt: a system message placed before the user turn (e.g. the world's "style: calm"), or None.
    kind: the loader's kind; VoiceBench and VStyle items are scored by their official rules (`benchmarks.tally`).
    subset: the VoiceBench subset; row_id: the row's id (bbh: names the task; VStyle: its id);
    instructions: ifeval's (instruction id, arguments) pairs.
    """

    question: str
    audio: Path | None
    references: tuple[str, ...]
    benchmark: str
    category: str = ""
    style: str | None = None
    system_prompt: str | None = None
    answer_type: str = "text"
    source: str = ""  # "file:line"
    kind: str = "generic"
    subset: str | None = None
    row_id: str | None = None
    instructions: tuple[tuple[str, dict[str, Any]], ...] = field(default=(), compare=False)
    audio_codes: tuple[int, ...] | None = None  # the question audio pre-tokenized by the policy's codec, if given

    def __post_init__(self) -> None:
        if self.answer_type not in ANSWER_TYPES:
            raise BenchmarkError(f"{self.source}: answer_type must be one of {ANSWER_TYPES}, got {self.answer_type!r}")

    def as_example(self) -> DialogueExample:
        """The item as a prompt the module can tokenize (`WavAlignModule.prompts`) and judge (`build_requests`)."""
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": AUDIO_PLACEHOLDER if self.audio is not None else self.question})
        return DialogueExample(
            messages=messages,
            target_text="",
            audios=[self.audio] if self.audio is not None else [],
            prompt_speech=None if self.audio_codes is None else [list(self.audio_codes)],
            question_text=self.question,
            reference_answer=self.references[0] if self.references else None,
            style=self.style,
            source=self.source,
        )


# ---- reading ------------------------------------------------------------------------------------------------------
def read_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) per non-empty line of a benchmark JSONL file; where = "file:line"."""
    return read_jsonl_rows(path, BenchmarkError, "benchmark")


def need_str(row: dict[str, Any], key: str, where: str) -> str:
    if key not in row:
        raise BenchmarkError(f"{where}: missing field '{key}'")
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise BenchmarkError(f"{where}: field '{key}' must be a non-empty string, got {value!r}")
    return value.strip()


def opt_str(row: dict[str, Any], key: str, where: str) -> str | None:
    return need_str(row, key, where) if row.get(key) is not None else None


def audio_path(value: Any, base: Path, where: str, key: str) -> Path:
    """A path relative to the benchmark file; also the {"path": ...} form that datasets' Audio columns export to."""
    if isinstance(value, dict):
        value = value.get("path")
    if not isinstance(value, str) or not value:
        raise BenchmarkError(f"{where}: field '{key}' must be a relative path string (or an object with 'path')")
    p = (base / value).resolve()
    if not p.is_file():
        raise BenchmarkError(f"{where}: field '{key}' names {value!r}, which does not exist (looked at {p})")
    return p


def take(items: list[BenchmarkItem], max_items: int | None, path: str | Path) -> list[BenchmarkItem]:
    """The first max_items items (file order, so every evaluation sees the same subset)."""
    if not items:
        raise BenchmarkError(f"{path}: no items")
    if max_items is not None:
        if max_items < 1:
            raise BenchmarkError(f"max_items must be >= 1, got {max_items}")
        items = items[:max_items]
    return items


# ---- checking replies ---------------------------------------------------------------------------------------------
_CHOICE_PATTERNS = (
    re.compile(r"(?i:answer|option|choice)\s*(?:is|would be|:)?\s*[\[\"']?([A-J])(?![\w'])"),
    re.compile(r"(?i:answer|option|choice)\s*(?:is|would be|:)?\s*\(([A-Ja-j])\)"),
    re.compile(r"^\s*[\(\[]?([A-J])(?:[\)\].:,]|\s*$)"),
    re.compile(r"\(([A-J])\)"),
)


def extract_choice(reply: str) -> str | None:
    """The multiple-choice letter a reply commits to: 'the answer is B', 'option (c)', 'B. Paris', '... (D)'.

    A small, explicit subset of VoiceBench's template list. Letters count in capitals, or in any case inside
    parentheses, so the article in 'the answer is a dog' is not read as choice A; unclear replies count as wrong
    (VoiceBench guesses a random letter instead)."""
    for pattern in _CHOICE_PATTERNS:
        m = pattern.search(reply)
        if m:
            return m.group(1).upper()
    return None


def correctness(item: BenchmarkItem, reply: str) -> float | None:
    """1.0 when the reply holds a reference answer, else 0.0; None for an item without references.

    text: every word of some reference appears in the reply (the AnswerJudge rule, without partial credit);
    final: the reply ends with some reference; choice: the extracted letter equals a reference letter."""
    if not item.references:
        return None
    if item.answer_type == "choice":
        letter = extract_choice(reply)
        return float(letter is not None and letter in {r.strip().upper() for r in item.references})
    if item.answer_type == "final":
        return float(any(ends_with_answer(reply, ref) for ref in item.references))
    got = set(words(reply))
    return float(any(ref_words and set(ref_words) <= got for ref_words in map(words, item.references)))
