"""A generic spoken-QA JSONL: one question a line, spoken or written, with its reference answer(s).

    {"question": "what is two plus three", "audio": "audio/q1.wav", "answer": "five"}
    {"question": "name a primary colour", "answers": ["red", "blue", "yellow"], "category": "colours"}
    {"question": "what is one plus one", "answer": "two", "style": "cheerful"}

question (required): the question as text. audio (optional): the spoken question, relative to the file.
answer | answers (optional, not both): acceptable answers; without them the item is open-ended.
answer_type (optional): "text" (default: every word of an answer appears in the reply), "final" (the reply ends
with an answer) or "choice". category, style (optional); a style becomes the system
message "style: <style>", the embedded world's convention for requesting a speaking style. audio_codes (optional,
with audio): the audio already tokenized by the policy's codec, as the training schema's audio_codes (the world's
files carry them, so an evaluation does not encode the same questions again in every run).

`GenericSuite` scores such a file for the pooled IQ: rule-checked against the references, or by its `iq_judge`.
"""

from __future__ import annotations

from pathlib import Path

from wavalign.benchmarks.base import (
    ANSWER_TYPES,
    BenchmarkError,
    BenchmarkItem,
    audio_path,
    correctness,
    need_str,
    opt_str,
    read_rows,
    take,
)
from wavalign.benchmarks.suite import Chunk, Suite, Tally
from wavalign.judges.base import Judge


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
        codes = row.get("audio_codes")
        if codes is not None:
            if row.get("audio") is None:
                raise BenchmarkError(f"{where}: field 'audio_codes' needs the field 'audio' it tokenizes")
            if not isinstance(codes, list) or not all(isinstance(c, int) and c >= 0 for c in codes):
                raise BenchmarkError(f"{where}: field 'audio_codes' must be a list of non-negative integer codes")
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
                audio_codes=None if codes is None else tuple(codes),
            )
        )
    return take(items, max_items, path)


class GenericSuite(Suite):
    """A generic spoken-QA file, scored for the pooled eval/iq, eval/eq, eval/wer (and eval/<name>/...).

    IQ per item: the fraction of its `iq_samples` replies that hold a reference answer (`benchmarks.correctness`);
    items without references are open-ended and count only when `iq_judge` is set, as (score - 1) / 4 of its
    reliable score of the first reply (an unreliable score leaves the item out).

    Args:
        name: names the suite's figures (eval/<name>/...); unique among the callback's suites, without '/'.
        path: the JSONL file (`benchmarks.generic` documents the rows).
        max_items: evaluate only the first N items (file order, so every evaluation sees the same subset).
        iq_judge: judges the open-ended items' first replies on 1-5; without it they add to EQ and WER only.
    """

    pooled = True

    def __init__(self, name: str, path: str, max_items: int | None = None, iq_judge: Judge | None = None) -> None:
        super().__init__(name, path, max_items)
        self.iq_judge = iq_judge

    def load(self) -> list[BenchmarkItem]:
        return load_generic(self.path, self.name, self.max_items)

    def score(self, chunk: Chunk, tally: Tally) -> list[float | None]:
        out: list[float | None] = []
        for item, samples in zip(chunk.items, chunk.samples):
            checks = [correctness(item, r.text) for r in samples]
            out.append(None if checks[0] is None else sum(checks) / len(checks))  # type: ignore[arg-type]
        open_ended = [i for i, item in enumerate(chunk.items) if not item.references]
        if self.iq_judge is not None and open_ended:
            judged = self.iq_judge.score([chunk.requests[i] for i in open_ended])
            for i, s in zip(open_ended, judged):
                out[i] = (s.score - 1.0) / 4.0 if s.reliable else None
        return out

    def close(self) -> None:
        if self.iq_judge is not None:
            self.iq_judge.close()
