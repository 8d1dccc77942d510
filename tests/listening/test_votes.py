"""wavalign.listening.votes: the log appends durable lines, and a foreign, malformed or duplicated vote is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from listening_fixtures import built

from wavalign.listening.votes import DuplicateVote, Vote, VoteError, VoteLog, parse_vote, read_votes

ALL_A = {"helpfulness": "a", "naturalness": "a", "overall": "a"}


def test_appended_votes_read_back_and_resume(tmp_path: Path) -> None:
    session = built(tmp_path)
    path = tmp_path / "votes.jsonl"
    log = VoteLog(path, session)
    log.append(Vote(session.id, "t0001", "ann", ALL_A))
    log.append(Vote(session.id, "t0002", "ann", {**ALL_A, "overall": "tie"}))
    log.append(Vote(session.id, "t0001", "bob", {**ALL_A, "naturalness": "b"}))
    with pytest.raises(DuplicateVote, match="'ann' already voted on t0001"):
        log.append(Vote(session.id, "t0001", "ann", ALL_A))
    assert len(path.read_text().splitlines()) == 3  # the duplicate wrote nothing
    again = VoteLog(path, session)  # a restarted server
    assert again.done("ann") == {"t0001", "t0002"} and again.done("bob") == {"t0001"} and again.done("cy") == set()
    votes = read_votes(path, session)
    assert [(v.rater, v.trial, v.choices["overall"], v.kind) for v in votes] == [
        ("ann", "t0001", "a", "human"),
        ("ann", "t0002", "tie", "human"),
        ("bob", "t0001", "a", "human"),
    ]


def test_votes_of_another_session_fail_naming_the_line(tmp_path: Path) -> None:
    first = built(tmp_path / "one")
    second = built(tmp_path / "two")
    path = tmp_path / "votes.jsonl"
    VoteLog(path, first).append(Vote(first.id, "t0001", "ann", ALL_A))
    with pytest.raises(
        ValueError, match=rf"votes.jsonl:1: vote of session '{first.id}', not of this session .*another session"
    ):
        VoteLog(path, second)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not a JSON line"),
        ('["a"]', "a vote is a JSON object"),
        ('{"session": "S", "trial": "t0009", "rater": "ann", "choices": {}}', "unknown trial 't0009'"),
        (
            '{"session": "S", "trial": "t0001", "rater": "ann", "choices": {"overall": "a"}}',
            "choices must answer exactly the criteria",
        ),
        ('{"session": "S", "trial": "t0001", "rater": "ann", "choices": CH, "x": 1}', r"unknown field\(s\) \['x'\]"),
        ('{"session": "S", "trial": "t0001", "rater": "a b", "choices": CH}', "rater id must be"),
        ('{"session": "S", "trial": "t0001", "rater": "ann", "choices": CH, "kind": "robot"}', "kind must be one of"),
        (
            '{"session": "S", "trial": "t0002", "rater": "ann", "choices": CH}',
            r"rater 'ann' voted on t0002 already \(line 1\)",
        ),
    ],
)
def test_malformed_line_is_named_by_number(tmp_path: Path, line: str, message: str) -> None:
    session = built(tmp_path)
    path = tmp_path / "votes.jsonl"
    good = Vote(session.id, "t0002", "ann", ALL_A).line()
    path.write_text(good + line.replace("S", session.id).replace("CH", json.dumps(ALL_A)) + "\n" + good)
    with pytest.raises(ValueError, match=rf"votes.jsonl:2: {message}"):
        read_votes(path, session)


def test_bad_choices_and_torn_last_line(tmp_path: Path) -> None:
    session = built(tmp_path)
    with pytest.raises(VoteError, match=r"choices must be one of \('a', 'b', 'tie'\), got \{'overall': 'left'\}"):
        parse_vote(
            {"session": session.id, "trial": "t0001", "rater": "ann", "choices": {**ALL_A, "overall": "left"}}, session
        )
    path = tmp_path / "votes.jsonl"
    path.write_text(Vote(session.id, "t0001", "ann", ALL_A).line().rstrip("\n"))  # valid JSON, no newline
    with pytest.raises(ValueError, match="the last line has no newline"):
        VoteLog(path, session)
    with pytest.raises(FileNotFoundError, match="votes file .*nowhere.jsonl does not exist"):
        read_votes(tmp_path / "nowhere.jsonl", session)
