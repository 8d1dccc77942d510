"""wavalign.listening.report on hand-made votes: every number in the tables worked out by hand (docstrings)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from listening_fixtures import built

from wavalign.listening.__main__ import main
from wavalign.listening.report import agreement, judge_agreement, win_rows, write_report
from wavalign.listening.votes import Vote, VoteLog

# Per prompt, each rater's vote with the first folder (alpha) always on side "a": a = alpha preferred.
HUMANS = {  # rater -> prompt -> (helpfulness, naturalness, overall)
    "ann": {0: ("a", "tie", "a"), 1: ("a", "tie", "a"), 2: ("a", "tie", "tie")},
    "bob": {0: ("a", "tie", "a"), 1: ("a", "tie", "b"), 2: ("a", "tie", "a")},
    "cy": {0: ("a", "tie", "a"), 2: ("a", "tie", "a")},
}
JUDGE = {0: ("a", "tie", "a"), 1: ("a", "tie", "b"), 2: ("b", "tie", "tie")}
CRITERIA = ("helpfulness", "naturalness", "overall")


@pytest.fixture
def voted(tmp_path: Path):
    session = built(tmp_path)
    for t in session.trials:  # alpha on side a everywhere, so the hand computations can name sides
        if t.a.system != 0:
            t.a, t.b = t.b, t.a
    session.save()
    trial_of = {t.prompt_id: t.id for t in session.trials}
    humans = VoteLog(session.root / "votes.jsonl", session)
    for rater, by_prompt in HUMANS.items():
        for pid, labels in by_prompt.items():
            humans.append(Vote(session.id, trial_of[pid], rater, dict(zip(CRITERIA, labels))))
    judge = VoteLog(session.root / "judge_votes.jsonl", session)
    for pid, labels in JUDGE.items():
        judge.append(Vote(session.id, trial_of[pid], "judge:m", dict(zip(CRITERIA, labels)), kind="judge"))
    return session, humans.votes, judge.votes


def test_win_rates_intervals_and_sign_test(voted) -> None:
    """overall: prompt 0 a a a, prompt 1 a b, prompt 2 tie a a -> 6 wins, 1 tie, 1 loss of 8.
    Bootstrap over prompts (each resample of 3 prompts that repeats one prompt has probability 1/27 = 3.7 % > 2.5 %,
    so the bounds are the extreme prompts): win per prompt 3/3, 1/2, 2/3 -> [1/2, 1]; tie 0/3, 0/2, 1/3 -> [0, 1/3];
    loss 0/3, 1/2, 0/3 -> [0, 1/2]. Sign test: prompts 0 and 2 won, prompt 1 even -> 2 of 2, p = 2 / 4.
    helpfulness: all 8 wins, 3 prompts won, p = 2 / 8; naturalness: all ties, p = 1."""
    session, humans, _ = voted
    rows = {r.criterion: r for r in win_rows(session, humans, "humans")}
    overall = rows["overall"]
    assert overall.pair == (0, 1) and overall.counts == {"win": 6, "tie": 1, "loss": 1} and overall.prompts == 3
    assert overall.rate("win") == 0.75
    assert overall.intervals == {"win": (0.5, 1.0), "tie": (0.0, pytest.approx(1 / 3)), "loss": (0.0, 0.5)}
    assert overall.sign == (2, 0, pytest.approx(0.5))
    assert rows["helpfulness"].counts == {"win": 8, "tie": 0, "loss": 0} and rows["helpfulness"].sign == (3, 0, 0.25)
    assert rows["naturalness"].intervals["tie"] == (1.0, 1.0) and rows["naturalness"].sign == (0, 0, 1.0)


def test_rater_agreement(voted) -> None:
    """overall, Fleiss: P_i = 1, 0, 1/3 -> 4/9; p_a = 6/8, p_b = 1/8, p_tie = 1/8 -> P_e = 38/64;
    kappa = (4/9 - 19/32) / (13/32) = -43/117. Cohen: ann-bob (a a tie / a b a): p_o = 1/3, p_e = 4/9 -> -1/5;
    ann-cy (a tie / a a): p_o = 1/2, p_e = 1/2 -> 0; bob-cy always equal and constant: undefined, left out ->
    mean -1/10 over 2 pairs. helpfulness: everyone says a: kappa undefined (n/a)."""
    session, humans, _ = voted
    rows = {r[0]: r for r in agreement(session, humans)}
    criterion, shared, fleiss, cohen, pairs = rows["overall"]
    assert shared == 3 and fleiss == pytest.approx(-43 / 117) and cohen == pytest.approx(-0.1) and pairs == 2
    assert math.isnan(rows["helpfulness"][2]) and math.isnan(rows["helpfulness"][3]) and rows["helpfulness"][4] == 0


def test_judge_against_the_human_majority(voted) -> None:
    """overall majorities: a, none (a b), a; judge a, b, tie -> 2 trials, agreement 1/2, Cohen p_o = 1/2 and
    p_e = 1/2 (the humans always say a) -> 0. helpfulness: majority a a a, judge a a b -> 2/3, kappa 0.
    naturalness: all ties on both sides -> 1, kappa undefined. The judge's own rates: overall 1 win, 1 tie, 1 loss."""
    session, humans, judge = voted
    rows = {r[0]: r for r in judge_agreement(session, judge, humans)}
    assert rows["overall"] == ("overall", 2, 0.5, pytest.approx(0.0))
    assert rows["helpfulness"][1:3] == (3, pytest.approx(2 / 3)) and rows["helpfulness"][3] == pytest.approx(0.0)
    assert rows["naturalness"][1:3] == (3, 1.0) and math.isnan(rows["naturalness"][3])
    (overall,) = [r for r in win_rows(session, judge, "judge:m") if r.criterion == "overall"]
    assert overall.counts == {"win": 1, "tie": 1, "loss": 1} and overall.sign == (1, 1, 1.0)


def test_markdown_and_png(voted, capsys: pytest.CaptureFixture) -> None:
    session, _, _ = voted
    assert main(["report", str(session.root)]) == 0
    assert "report.md and" in capsys.readouterr().out
    md = (session.root / "report.md").read_text()
    assert "## zzalphamodel vs zzbetamodel (humans)" in md and "## zzalphamodel vs zzbetamodel (judge:m)" in md
    assert "| overall | 8 | 3 | 75.0 % [50.0, 100.0] | 12.5 % [0.0, 33.3] | 12.5 % [0.0, 50.0] | 2 / 0 | 0.5 |" in md
    assert "| helpfulness | 8 | 3 | 100.0 % [100.0, 100.0] | 0.0 % [0.0, 0.0] | 0.0 % [0.0, 0.0] | 3 / 0 | 0.25 |" in md
    assert "| overall | 3 | -0.368 | -0.100 | 2 |" in md and "| helpfulness | 3 | n/a | n/a | 0 |" in md
    assert "| overall | 2 | 50.0 % | 0.000 |" in md and "| naturalness | 3 | 100.0 % | n/a |" in md
    png = (session.root / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_votes_of_another_session_or_none(tmp_path: Path, voted, capsys: pytest.CaptureFixture) -> None:
    session, _, _ = voted
    other = built(tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="has no votes.jsonl or judge_votes.jsonl yet"):
        write_report(other.root)
    assert main(["report", str(other.root), "--votes", str(session.root / "votes.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "votes.jsonl:1: vote of session" in err and "another session" in err
