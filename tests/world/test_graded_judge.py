"""The world's graded judge, on hand-scored replies (defaults: restate 0.5, kind 1, close 2, spread 4)."""

import pytest

from wavalign.judges.base import JudgeRequest
from wavalign.world.graded_judge import GradedAnswerJudge, answer_kinds, numeric_closeness, restated_share


def score(question: str, reply: str, reference: str, **kw) -> float:
    return GradedAnswerJudge(**kw).score([JudgeRequest(question, reply, reference=reference)])[0].score


@pytest.mark.parametrize(
    ("question", "reply", "reference", "expected"),
    [
        # right: 5, whatever else
        ("what is three plus four", "three plus four is seven", "seven", 5.0),
        ("what is three plus four", "seven", "seven", 5.0),
        # restated (3/3), a number (kind 1), one off: close 1 - 1/4 = 0.75 -> 1 + 0.5 + 1 + 1.5
        ("what is three plus four", "three plus four is eight", "seven", 4.0),
        # restated, a number, five off: close 0 -> 1 + 0.5 + 1
        ("what is three plus four", "three plus four is twelve", "seven", 2.5),
        # restated, not a number ("blue"): kind 0, close 0 -> 1.5
        ("what is three plus four", "three plus four is blue", "seven", 1.5),
        # two of three content words restated (three, four; "plus" missing): 1 + 0.5 * 2/3 + 1 + 2 * 0.5
        ("what is three plus four", "three and four is nine", "seven", 1 + 0.5 * 2 / 3 + 1 + 1.0),
        # a colour for a colour, no restatement ("what color a banana" -> color, a, banana: none said)
        ("what color is a banana", "it is red", "yellow", 2.0),
        # "white" is a colour and an opposite: an opposite answers an opposite question
        ("what is the opposite of black", "the opposite of black is dark", "white", 1 + 0.5 + 1),
        # a sequence with two of three right: close 2/3; restated 5/6 ("me" missing), worked out in the test
        ("repeat after me one two three", "repeat after one two three one two four", "one two three", None),
        # empty reply: nothing
        ("what is three plus four", "", "seven", 1.0),
    ],
)
def test_hand_scored_replies(question, reply, reference, expected):
    if expected is None:  # worked out below the table: the sequence case
        said = "repeat after one two three".split()
        expected = 1 + 0.5 * restated_share(question.split(), said) + 1 + 2 * (2 / 3)
        assert restated_share(question.split(), said) == pytest.approx(5 / 6)  # me missing of 6 content words
    assert score(question, reply, reference) == pytest.approx(expected, abs=1e-12)


def test_only_a_right_answer_scores_five_and_parts_say_why():
    judge = GradedAnswerJudge()
    right, near = judge.score(
        [
            JudgeRequest("what is two plus two", "two plus two is four", reference="four"),
            JudgeRequest("what is two plus two", "two plus two is five", reference="four"),
        ]
    )
    assert right.score == 5.0 and right.parts == {"correct": 1.0}
    assert near.score < 5.0 and near.parts == {"correct": 0.0, "restate": 1.0, "kind": 1.0, "close": 0.75}


def test_no_reference_is_unreliable_and_credits_that_could_reach_five_are_refused():
    (s,) = GradedAnswerJudge().score([JudgeRequest("what is it", "it is four", reference=None)])
    assert not s.reliable and s.score == 2.5
    with pytest.raises(ValueError, match="could score 5"):
        GradedAnswerJudge(restate=1.0, kind=1.0, close=2.5)
    with pytest.raises(ValueError, match="spread"):
        GradedAnswerJudge(spread=0)


def test_kinds_and_closeness():
    kinds = answer_kinds()
    assert kinds["white"] == {"color", "opposite"} and kinds["seven"] == {"number"} and kinds["monday"] == {"day"}
    assert numeric_closeness(["nine"], ["seven"], 4.0) == 0.5
    assert numeric_closeness(["blue"], ["seven"], 4.0) == 0.0
    assert numeric_closeness(["one", "five", "three"], ["one", "two", "three"], 4.0) == pytest.approx(2 / 3)


def test_the_judge_closes_like_any_judge():
    GradedAnswerJudge().close()  # the module calls close() at the end of fit; a credit must not shadow it
