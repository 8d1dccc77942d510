"""The whole listening test on real `wavalign predict` output: both debug configs answer configs/data/debug_val.jsonl
(untrained weights: no fit needed), then build, serve (a real process), two raters vote over HTTP, a judge votes
through a real chat-completions server, and the report counts it all. The debug configs have no codec, so their
replies are rated by transcript, which the page then shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chat_server import chat_server
from listening_fixtures import get, post_vote, serving

from wavalign.cli import main as wavalign
from wavalign.listening.session import load_session
from wavalign.listening.votes import read_votes

PROMPTS = "configs/data/debug_val.jsonl"


def test_predict_build_serve_vote_judge_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "configs").symlink_to(Path(__file__).resolve().parents[2] / "configs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for config in ("debug_interleaved", "debug_parallel"):
        wavalign(
            ["predict", "--config", f"configs/{config}.yaml", "--data.predict_file", PROMPTS]
            + [f"--listen.output_dir=predict/{config}", "--trainer.enable_progress_bar=false"]
        )

    def run(*args: str) -> None:
        with pytest.raises(SystemExit) as e:
            wavalign(["listening", *args])
        assert e.value.code == 0, args

    run("build", "session", "predict/debug_interleaved", "predict/debug_parallel", "--seed", "7")
    session = json.loads(Path("session/session.json").read_text())
    replies = {
        s: {
            json.loads(line)["id"]: json.loads(line)["replies"][0]["text"]
            for line in open(f"predict/{s}/replies.jsonl")
        }
        for s in ("debug_interleaved", "debug_parallel")
    }
    assert len(session["trials"]) == 6 and [s["name"] for s in session["systems"]] == list(replies)

    with serving(tmp_path / "session") as (_, url):
        served = json.loads(get(url + "/api/trials?rater=ann")[1])
        for trial in served["trials"]:  # no audio here: the transcripts are what the raters judge
            kept = next(t for t in session["trials"] if t["id"] == trial["id"])
            assert (
                trial["a"]["text"]
                == kept["a"]["text"]
                == replies[list(replies)[kept["a"]["system"]]][kept["prompt_id"]]
            )
            assert trial["a"]["audio"] is None and "debug_" not in json.dumps(trial)
            interleaved = "a" if kept["a"]["system"] == 0 else "b"
            assert post_vote(url, "ann", trial["id"], dict.fromkeys(served["criteria"], interleaved))[0] == 200
            assert post_vote(url, "bob", trial["id"], dict.fromkeys(served["criteria"], "tie"))[0] == 200

    reply = "<helpfulness>1</helpfulness><naturalness>1</naturalness><overall>1</overall>"  # always the first shown
    with chat_server(lambda body: [reply]) as server:
        run("judge", "session", "--base_url", server.url, "--model", "m", "--allow_no_key", "--text_only")
    run("report", "session")
    md = Path("session/report.md").read_text()
    # ann: 6 wins, bob: 6 ties -> 50 % / 50 % / 0 %; every prompt won -> p = 2 / 2^6; the judge: ties only
    assert "## debug_interleaved vs debug_parallel (humans)" in md
    assert "| overall | 12 | 6 | 50.0 % [50.0, 50.0] | 50.0 % [50.0, 50.0] | 0.0 % [0.0, 0.0] | 6 / 0 | 0.03125 |" in md
    assert "| overall | 6 | 6 | 0.0 % [0.0, 0.0] | 100.0 % [100.0, 100.0] | 0.0 % [0.0, 0.0] | 0 / 0 | 1 |" in md
    assert Path("session/report.png").stat().st_size > 10_000
    votes = read_votes("session/judge_votes.jsonl", load_session("session"))
    assert len(votes) == 6 and all(set(v.choices.values()) == {"tie"} and v.session == session["id"] for v in votes)
