"""A generic spoken-QA JSONL: one question a line, spoken or written, with its reference answer(s).

    {"question": "what is two plus three", "audio": "audio/q1.wav", "answer": "five"}
    {"question": "name a primary colour", "answers": ["red", "blue", "yellow"], "category": "colours"}
    {"question": "what is one plus one", "answer": "two", "style": "cheerful"}

question (required): the question as text. audio (optional): the spoken question, relative to the file.
answer | answers (optional, not both): acceptable answers; without them the item is open-ended.
answer_type (optional): "text" (default: every word of an answer appears in the reply), "final" (the reply ends
with an answer) or "choice". category, style (optional); a style becomes the system
message "style: <style>", the embedded world's convention for requesting a speaking style.
"""

from __future__ import annotations

from pathlib import Path

from wavalign.benchmarks.base import (
    ANSWER_TYPES,
    BenchmarkError,
    BenchmarkItem,
    audio_path,
    need_str,
    opt_str,
    read_rows,
    take,
)


def references(row: dict, where: str) -> tuple[str, ...]:
    if "answer" in row and "answers" in row:
        raise BenchmarkError(f"{where}: give either field 'answer' or field 'answers', not both")
    if row.get("answers") is not None:
        answers = row["answers"]
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip() for a in answers):
            raise BenchmarkError(f"{where}: field 'answers' must be a non-empty list of non-empty strings")
        return tuple(a.strip() for a in answers)
    answer = opt_str(row, "answer", where)
    return (answer,) if answer else ()


def load_generic(path: str | Path, name: str, max_items: int | None = None) -> list[BenchmarkItem]:
    path = Path(path)
    items = []
    for where, row in read_rows(path):
        answer_type = opt_str(row, "answer_type", where) or "text"
        if answer_type not in ANSWER_TYPES:
            raise BenchmarkError(f"{where}: field 'answer_type' must be one of {ANSWER_TYPES}, got {answer_type!r}")
        style = opt_str(row, "style", where)
        items.append(
            BenchmarkItem(
                question=need_str(row, "question", where),
                audio=audio_path(row["audio"], path.parent, where, "audio") if row.get("audio") is not None else None,
                references=references(row, where),
                benchmark=name,
                category=opt_str(row, "category", where) or "",
                style=style,
                system_prompt=f"style: {style}" if style else None,
                answer_type=answer_type,
                source=where,
            )
        )
    return take(items, max_items, path)
