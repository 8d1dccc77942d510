"""wavalign.listening.server as a real process on 127.0.0.1: a blind API, clear refusals, and no acknowledged vote
lost when the server is killed (-9) in the middle of a session with several raters voting at once."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

from listening_fixtures import SECRETS, built, get, make_run, post_vote, serving

from wavalign.listening.session import build_session
from wavalign.listening.votes import read_votes

ALL_TIE = {"helpfulness": "tie", "naturalness": "tie", "overall": "tie"}


def test_api_is_blind_and_refuses_bad_votes(tmp_path: Path) -> None:
    session = built(tmp_path)
    with serving(session.root) as (_, url):
        status, page = get(url + "/")
        assert status == 200 and b"Listening test" in page
        status, body = get(url + "/api/trials?rater=ann")
        trials = json.loads(body)
        assert status == 200 and trials["done"] == [] and trials["criteria"] == session.criteria
        assert sorted(t["id"] for t in trials["trials"]) == ["t0001", "t0002", "t0003"]
        assert all(t["a"]["text"] is None for t in trials["trials"])  # audio only, unless built with show_text
        for served in (page, body):
            assert not any(s.encode() in served for s in SECRETS) and b"system" not in served
        first = trials["trials"][0]
        status, wav = get(url + first["a"]["audio"])
        side = session.trial(first["id"]).a
        assert status == 200 and wav == (session.audio_dir / side.audio).read_bytes()
        for path in ("/session.json", "/audio/session.json", "/audio/..%2Fsession.json", "/audio/0123456789abcdef.wav"):
            assert get(url + path)[0] == 404, path
        assert get(url + "/api/trials?rater=a%20b")[0] == 400
        assert post_vote(url, "ann", "t0001", ALL_TIE) == (200, {"ok": True, "done": 1, "total": 3})
        status, answer = post_vote(url, "ann", "t0001", ALL_TIE)
        assert status == 409 and answer["duplicate"] is True
        assert post_vote(url, "ann", "t0009", ALL_TIE) == (400, {"error": "unknown trial 't0009'"})
        status, answer = post_vote(url, "ann", "t0002", {"overall": "a"})
        assert status == 400 and "choices must answer exactly the criteria" in answer["error"]
        status, body = get(url + "/api/trials?rater=ann")
        assert json.loads(body)["done"] == ["t0001"]
    (vote,) = read_votes(session.root / "votes.jsonl", session)
    assert (vote.rater, vote.trial, vote.kind, vote.session) == ("ann", "t0001", "human", session.id)


def test_kill_9_mid_session_loses_no_acknowledged_vote(tmp_path: Path) -> None:
    questions = [f"question {i}" for i in range(30)]
    a = make_run(tmp_path / "a", ["x"] * 30, "a.ckpt", 300.0, questions=questions, audio=False)
    b = make_run(tmp_path / "b", ["y"] * 30, "b.ckpt", 500.0, questions=questions, audio=False)
    session = build_session(tmp_path / "s", [a, b])
    raters = ["r1", "r2", "r3", "r4"]
    acknowledged: set[tuple[str, str]] = set()
    lock, enough = threading.Lock(), threading.Event()

    def rate(url: str, rater: str) -> None:
        for trial in session.trials:
            try:
                status, _ = post_vote(url, rater, trial.id, ALL_TIE)
            except OSError:  # the server is gone: this vote was never acknowledged
                return
            if status == 200:
                with lock:
                    acknowledged.add((rater, trial.id))
                    if len(acknowledged) >= 25:
                        enough.set()

    with serving(session.root) as (proc, url):
        threads = [threading.Thread(target=rate, args=(url, r)) for r in raters]
        for t in threads:
            t.start()
        assert enough.wait(30), "the raters got fewer than 25 votes through"
        proc.send_signal(signal.SIGKILL)  # no shutdown handler runs
        proc.wait(timeout=10)
        for t in threads:
            t.join(timeout=30)
    with lock:
        acked = set(acknowledged)
    on_disk = {(v.rater, v.trial) for v in read_votes(session.root / "votes.jsonl", session)}  # every line whole
    assert acked <= on_disk and len(acked) < 4 * 30
    with serving(session.root) as (_, url):  # resume: each rater's done list holds every acknowledged vote
        for rater in raters:
            done = set(json.loads(get(url + f"/api/trials?rater={rater}")[1])["done"])
            assert {t for r, t in acked if r == rater} <= done
        rest = [t.id for t in session.trials if t.id not in done]
        assert post_vote(url, rater, rest[0], ALL_TIE)[0] == 200
    assert len(read_votes(session.root / "votes.jsonl", session)) == len(on_disk) + 1
