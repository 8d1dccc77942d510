import pytest

from wavalign.judges.base import Judge, JudgeRequest, JudgeScore
from wavalign.judges.combined import IntegerJudge, PooledJudge, WeightedJudge
from wavalign.judges.rules import AnswerJudge


class Const(Judge):
    def __init__(self, value, reliable=True):
        self.value, self.reliable = value, reliable

    def score(self, requests):
        return [JudgeScore(self.value, self.reliable, {"x": 1.0}) for _ in requests]


def test_weighted_judge_split_mode():
    judge = WeightedJudge([Const(5.0), Const(2.0, reliable=False)], [0.7, 0.3], ["semantic", "acoustic"])
    (s,) = judge.score([JudgeRequest("q", "a")])
    assert s.score == pytest.approx(0.7 * 5 + 0.3 * 2)
    assert not s.reliable
    assert s.parts == {"semantic": 5.0, "semantic_x": 1.0, "acoustic": 2.0, "acoustic_x": 1.0}
    with pytest.raises(ValueError, match="sum to 1"):
        WeightedJudge([Const(1.0)], [0.5], ["a"])


def test_answer_judge_good_and_bad():
    good, partial, bad, unknown = AnswerJudge().score(
        [
            JudgeRequest("what is two plus two", "two plus two is four", reference="four"),
            JudgeRequest("q", "it is red or blue", reference="blue sky"),
            JudgeRequest("what is two plus two", "two plus two is five", reference="four"),
            JudgeRequest("q", "four"),
        ]
    )
    assert good.score == 5.0 and bad.score == 1.0 and 1.0 < partial.score < 5.0
    assert not unknown.reliable


def test_pooled_judge_preserves_order():
    requests = [
        JudgeRequest("q", f"the answer is {w}", reference=w if i % 2 else "zero")
        for i, w in enumerate("one two three four five".split())
    ]
    pooled = PooledJudge(AnswerJudge(), workers=2)
    try:
        assert [s.score for s in pooled.score(requests)] == [s.score for s in AnswerJudge().score(requests)]
    finally:
        pooled.close()


def test_answer_judge_final_match_pays_only_the_answer_at_the_end():
    requests = [
        JudgeRequest("which is bigger three or nine", "the bigger of three and nine is nine", reference="nine"),
        JudgeRequest("which is bigger three or nine", "the bigger of three and nine is three", reference="nine"),
        JudgeRequest("what is two plus two", "two plus two is four.", reference="four"),
        JudgeRequest("q", "anything"),
    ]
    contains = [s.score for s in AnswerJudge().score(requests[:3])]
    assert contains == [5.0, 5.0, 5.0]  # the restated candidate fools the 'contains' rule
    right, wrong, punctuated, unknown = AnswerJudge(match="final").score(requests)
    assert (right.score, wrong.score, punctuated.score) == (5.0, 1.0, 5.0)
    assert (right.parts["correct"], wrong.parts["correct"]) == (1.0, 0.0)
    assert not unknown.reliable and unknown.score == 2.5
    with pytest.raises(ValueError, match="match"):
        AnswerJudge(match="last")


def test_integer_judge_rounds_half_up_and_keeps_the_raw_score():
    raws = [1.0, 2.49, 2.5, 3.51, 4.999]
    scores = [IntegerJudge(Const(r, reliable=r != 2.5)).score([JudgeRequest("q", "a")])[0] for r in raws]
    assert [s.score for s in scores] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [s.parts["raw"] for s in scores] == raws and scores[0].parts["x"] == 1.0
    assert [s.reliable for s in scores] == [True, True, False, True, True]


def test_integer_acoustic_part_ties_equally_wrong_replies():
    """Split mode with a rounded acoustic part: two wrong replies whose acoustic scores differ by noise tie."""
    judge = WeightedJudge([Const(1.0), IntegerJudge(Const(4.3))], [0.7, 0.3], ["semantic", "acoustic"])
    other = WeightedJudge([Const(1.0), IntegerJudge(Const(3.8))], [0.7, 0.3], ["semantic", "acoustic"])
    (a,) = judge.score([JudgeRequest("q", "a")])
    (b,) = other.score([JudgeRequest("q", "a")])
    assert a.score == b.score == pytest.approx(0.7 * 1 + 0.3 * 4)
    assert (a.parts["acoustic_raw"], b.parts["acoustic_raw"]) == (4.3, 3.8)
