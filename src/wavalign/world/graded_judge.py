"""The embedded world's graded content judge: a 1-5 score with partial credit, like the paper's LLM judge.

Why graded: with a right/wrong reward (5 or 1) a group's rewards are equal whenever no sample (or every sample) is
right, so most groups carry no policy gradient, and the dynamic gate's terms take two or three values (its
variance is 0 or fixed, its "a good sample exists" factor is 0 or 1). The paper's judge grades on 1-5; this one
grades the world's replies, which restate the question and end with the answer ("three plus four is seven"), on
what can be checked without an LLM:

- a reply that ends with the reference answer scores 5 (the exact-answer check IQ uses);
- otherwise 1, plus
  - `restate` x the share of the question's content words the reply repeats before its last words,
  - `kind` when the last words are an answer of the right kind (a number for a number, a day for a day, ...),
  - `close` x numeric closeness when the answer is a number or a sequence of numbers: 1 - |got - ref| / `spread`
    (floored at 0) for one number, the share of positions right for a sequence.

A wrong answer's closeness is below 1, so with restate + kind + close <= 4 it scores below 5: 5 means right and
nothing else does (defaults: at most 4.0 for a number one off, 3.83 for a sequence with two of three right). IQ (eval/iq) stays the exact-answer accuracy: the reward and the metric differ.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from wavalign.judges.base import MAX_SCORE, MIN_SCORE, Judge, JudgeRequest, JudgeScore
from wavalign.judges.rules import ends_with_answer
from wavalign.world.tasks import COLORS, DAYS, MONTHS, NUMBERS, OPPOSITES, SOUNDS, words

# question words that carry no content to restate ("what is three plus four" -> three, plus, four)
QUESTION_WORDS = frozenset({"what", "which", "how", "is", "does", "do"})


@lru_cache(maxsize=1)
def answer_kinds() -> dict[str, frozenset[str]]:
    """Each answer word of the world -> its kinds ("white" is a colour and an opposite)."""
    kinds: dict[str, set[str]] = {}
    for kind, vocabulary in (
        ("number", NUMBERS),
        ("day", DAYS),
        ("month", MONTHS),
        ("color", [c for _, c in COLORS]),
        ("opposite", [w for pair in OPPOSITES for w in pair]),
        ("sound", [s for _, s in SOUNDS]),
    ):
        for w in vocabulary:
            kinds.setdefault(w, set()).add(kind)
    return {w: frozenset(k) for w, k in kinds.items()}


class GradedAnswerJudge(Judge):
    """Scores a reply's text 1-5 against the reference answer with partial credit (see the module docstring).

    Args:
        restate: credit (score points) for repeating every content word of the question before the answer.
        kind: credit for ending with an answer of the reference's kind.
        close: credit for numeric closeness, scaled by it (a wrong number is never fully close).
        spread: how far (in units) a number may miss before its closeness credit is 0.
        fallback_score: score of a request without a reference, marked unreliable.
    """

    def __init__(
        self,
        restate: float = 0.5,
        kind: float = 1.0,
        close: float = 2.0,
        spread: float = 4.0,
        fallback_score: float = 2.5,
    ) -> None:
        if min(restate, kind, close) < 0 or spread <= 0:
            raise ValueError(
                f"GradedAnswerJudge: credits must be >= 0 and spread > 0, got {restate, kind, close, spread}"
            )
        if MIN_SCORE + restate + kind + close > MAX_SCORE:  # closeness < 1 for a wrong answer: it stays below 5
            raise ValueError(
                f"GradedAnswerJudge: restate + kind + close = {restate + kind + close:g} exceeds "
                f"{MAX_SCORE - MIN_SCORE:g}, so a wrong answer could score 5; lower the credits"
            )
        # credits in score points (not self.close: Judge.close() is the judge's shutdown hook)
        self.credits, self.spread = (restate, kind, close), spread
        self.fallback_score = float(fallback_score)

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        return [self._one(r) for r in requests]

    def _one(self, req: JudgeRequest) -> JudgeScore:
        ref = words(req.reference or "")
        if not ref:
            return JudgeScore(self.fallback_score, reliable=False, parts={"correct": 0.0})
        if ends_with_answer(req.reply_text, req.reference):  # the exact-answer rule IQ uses
            return JudgeScore(MAX_SCORE, parts={"correct": 1.0})
        got = words(req.reply_text)
        answer, before = got[-len(ref) :], got[: -len(ref)]
        restate = restated_share(words(req.question), before)
        kind = float(len(answer) == len(ref) and all(same_kind(a, r) for a, r in zip(answer, ref)))
        close = numeric_closeness(answer, ref, self.spread) if kind else 0.0
        restate_w, kind_w, close_w = self.credits
        total = MIN_SCORE + restate_w * restate + kind_w * kind + close_w * close
        return JudgeScore(total, parts={"correct": 0.0, "restate": restate, "kind": kind, "close": close})


def restated_share(question: Sequence[str], said: Sequence[str]) -> float:
    """The share of the question's content words (not QUESTION_WORDS) that appear in `said`."""
    content = [w for w in question if w not in QUESTION_WORDS]
    if not content:
        return 0.0
    have = set(said)
    return sum(w in have for w in content) / len(content)


def same_kind(got: str, ref: str) -> bool:
    """Whether two answer words share a kind (an unknown word has none)."""
    kinds = answer_kinds()
    return bool(kinds.get(got, frozenset()) & kinds.get(ref, frozenset()))


def numeric_closeness(got: Sequence[str], ref: Sequence[str], spread: float) -> float:
    """For number answers: one number, 1 - |got - ref| / spread floored at 0; several, the share of positions
    right. 0 for other kinds."""
    index = {w: i for i, w in enumerate(NUMBERS)}
    if not all(w in index for w in (*got, *ref)):
        return 0.0
    if len(ref) == 1:
        return max(0.0, 1.0 - abs(index[got[0]] - index[ref[0]]) / spread)
    return sum(a == b for a, b in zip(got, ref)) / len(ref)
