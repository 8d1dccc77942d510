"""wavalign.listening.pairwise_judge against a real chat-completions server on 127.0.0.1 (tests/chat_server.py):
both orders asked, verdicts mapped back to sides, position bias cancelled, failures reported, reruns resume."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from chat_server import chat_server, user_text
from listening_fixtures import built

from wavalign.judges.http import HttpJudge
from wavalign.listening.__main__ import main
from wavalign.listening.pairwise_judge import combine, parse_verdict, system_prompt, to_sides
from wavalign.listening.votes import read_votes

ALPHA_TEXTS = {"two", "four", "red"}  # what the first folder answered (listening_fixtures.two_runs)
KEY_ENV, SECRET = "WAVALIGN_TEST_PAIRWISE_KEY", "sk-pairwise-secret"


@pytest.fixture(autouse=True)
def local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv(KEY_ENV, SECRET)


def transcripts(body: dict) -> tuple[str, str]:
    text = body["messages"][-1]["content"][0]["text"]  # the prompt and both transcripts; audio parts follow
    return re.search(r"Reply 1 transcript: (.*)", text).group(1), re.search(r"Reply 2 transcript: (.*)", text).group(1)


def scripted(body: dict) -> list[str]:
    """Helpfulness: the first folder's reply, wherever it is shown; naturalness: always a tie; overall: always the
    reply shown first (pure position bias)."""
    first, _ = transcripts(body)
    better = "1" if first in ALPHA_TEXTS else "2"
    return [
        f"<justification>ok</justification><helpfulness>{better}</helpfulness><naturalness>tie</naturalness><overall>1</overall>"
    ]


def test_parse_and_combine() -> None:
    criteria = ["helpfulness", "overall"]
    assert parse_verdict(
        "<helpfulness>2</helpfulness> <overall> TIE </overall><helpfulness>1</helpfulness>", criteria
    ) == {
        "helpfulness": "1",
        "overall": "tie",
    }
    assert parse_verdict("<helpfulness>1</helpfulness>", criteria) is None
    assert to_sides({"helpfulness": "1", "overall": "2"}, "ba") == {"helpfulness": "b", "overall": "a"}
    assert combine({"x": "a", "y": "a", "z": "tie"}, {"x": "a", "y": "b", "z": "b"}) == {
        "x": "a",
        "y": "tie",
        "z": "tie",
    }
    assert "<helpfulness>1</helpfulness><overall>1</overall>" in system_prompt(criteria)


def test_both_orders_asked_and_mapped_to_sides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    session = built(tmp_path)
    with chat_server(scripted) as server:
        code = main(
            ["judge", str(session.root), "--base_url", server.url, "--model", "gpt-x", "--api_key_env", KEY_ENV]
        )
        requests = list(server.requests)
    assert code == 0 and "3 trials judged" in capsys.readouterr().out
    assert len(requests) == 6 and all(r["model"] == "gpt-x" for r in requests)
    shown = sorted(transcripts(r) for r in requests)
    assert shown == sorted(
        [("two", "three"), ("three", "two"), ("four", "five"), ("five", "four"), ("red", "blue"), ("blue", "red")]
    )
    for body in requests:  # each reply's audio is sent, in the order shown
        audio = [p["input_audio"]["data"] for p in body["messages"][-1]["content"] if p["type"] == "input_audio"]
        first, _ = transcripts(body)
        trial = next(t for t in session.trials if first in (t.a.text, t.b.text))
        shown_first = trial.a if trial.a.text == first else trial.b
        assert base64.b64decode(audio[0]) == (session.audio_dir / shown_first.audio).read_bytes() and len(audio) == 2
    path = session.root / "judge_votes.jsonl"
    votes = read_votes(path, session)
    assert len(votes) == 3 and SECRET not in path.read_text()
    for vote in votes:
        trial = session.trial(vote.trial)
        alpha_side = "a" if trial.a.system == 0 else "b"
        assert (vote.rater, vote.kind) == ("judge:gpt-x", "judge")
        assert vote.choices == {"helpfulness": alpha_side, "naturalness": "tie", "overall": "tie"}
        assert vote.detail["ab"]["overall"] == "a" and vote.detail["ba"]["overall"] == "b"  # the bias, cancelled


def test_failed_trials_are_reported_and_a_rerun_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    session = built(tmp_path)

    def flaky(body: dict) -> list[str] | int:
        return 500 if "colour" in user_text(body) else scripted(body)

    args = ["judge", str(session.root), "--model", "m", "--allow_no_key", "--api_key_env", "WAVALIGN_NO_SUCH_KEY"]
    with chat_server(flaky) as server:
        assert main([*args, "--base_url", server.url, "--max_retries", "0"]) == 1
    out = capsys.readouterr().out
    assert "2 trials judged" in out and "1 failed" in out and "HTTP 500" in out
    with chat_server(scripted) as server:
        assert main([*args, "--base_url", server.url]) == 0
        assert len(server.requests) == 2  # only the failed trial, in both orders
    assert len(read_votes(session.root / "judge_votes.jsonl", session)) == 3
    assert main([*args, "--base_url", "http://127.0.0.1:9/v1", "--api_key_env", KEY_ENV, "--limit", "0"]) == 0
    del_env = [
        "judge",
        str(session.root),
        "--model",
        "m",
        "--base_url",
        "http://127.0.0.1:9/v1",
        "--api_key_env",
        "WAVALIGN_NO_SUCH_KEY",
    ]
    assert main(del_env) == 1 and "'WAVALIGN_NO_SUCH_KEY' (api_key_env) is not set" in capsys.readouterr().err


def test_judge_uses_the_shared_transport(tmp_path: Path) -> None:
    """HttpJudge.ask is the one client: a reply in the wrong format is retried, then reported (never raised)."""
    with chat_server(lambda body: ["no tags here"]) as server:
        judge = HttpJudge(server.url, "m", allow_no_key=True, max_retries=1, backoff_s=0.01)
        got, error = judge.ask("sys", [{"type": "text", "text": "q"}], lambda r: parse_verdict(r, ["overall"]), None)
        assert got is None and "after 2 attempts" in error and len(server.requests) == 2
