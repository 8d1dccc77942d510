"""Deterministic rule judges: exact-answer checking, for tests and for tasks with one right answer."""

from __future__ import annotations

import re
from typing import Sequence

from wavalign.judges.base import MAX_SCORE, MIN_SCORE, Judge, JudgeRequest, JudgeScore

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


MATCH_MODES = ("contains", "final")


def ends_with_answer(reply: str, reference: str) -> bool:
    """The reply's last words are the reference's words (the reply "ends with the answer")."""
    ref, got = words(reference), words(reply)
    return bool(ref) and got[-len(ref) :] == ref


class AnswerJudge(Judge):
    """Scores the reply text against the reference answer.

    match='contains': 5 when every reference word appears in the reply, otherwise
    1 + 4 x (fraction of reference words present) x `partial_credit`.
    match='final': 5 when the reply ENDS with the reference, else 1. For tasks whose replies restate the question
    before answering ("the bigger of three and nine is nine"): there the candidates appear in every reply, so
    'contains' would pay a wrong answer that restates the question.
    A request without a reference is scored unreliable (fallback), never silently as right or wrong.

    Args:
        partial_credit: Under match='contains', the factor on the share of reference words present, in [0, 1]; 0
            scores every incomplete answer 1, 1 pays the share found in full (half the words: 3).
        fallback_score: Score (1-5) of a request without a reference answer, marked unreliable.
        match: "contains" (every reference word anywhere in the reply) or "final" (the reply ends with the
            reference: for replies that restate the question, whose candidates appear in every reply).
    """

    def __init__(self, partial_credit: float = 0.5, fallback_score: float = 2.5, match: str = "contains") -> None:
        if match not in MATCH_MODES:
            raise ValueError(f"AnswerJudge match must be one of {MATCH_MODES}, got {match!r}")
        self.partial_credit = float(partial_credit)
        self.fallback_score = float(fallback_score)
        self.match = match

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        return [self._one(r) for r in requests]

    def _one(self, req: JudgeRequest) -> JudgeScore:
        if not req.reference:
            return JudgeScore(self.fallback_score, reliable=False, parts={"correct": 0.0})
        if self.match == "final":
            right = ends_with_answer(req.reply_text, req.reference)
            return JudgeScore(MAX_SCORE if right else MIN_SCORE, parts={"correct": float(right)})
        ref = set(words(req.reference))
        got = set(words(req.reply_text))
        hit = len(ref & got) / max(len(ref), 1)
        if hit == 1.0:
            return JudgeScore(MAX_SCORE, parts={"correct": 1.0})
        return JudgeScore(MIN_SCORE + (MAX_SCORE - MIN_SCORE) * hit * self.partial_credit, parts={"correct": 0.0})
