"""wavalign.listening.session: trials per pair and prompt, recorded side order, opaque audio, clear input errors."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from listening_fixtures import QUESTIONS, SECRETS, built, make_run, two_runs

from wavalign.listening.__main__ import main
from wavalign.listening.session import build_session, load_session, rater_order


def test_one_trial_per_prompt_and_pair_with_blinded_audio(tmp_path: Path) -> None:
    session = built(tmp_path, seed=3)
    assert [s["name"] for s in session.systems] == ["zzalphamodel", "zzbetamodel"]
    assert len(session.trials) == 3 and sorted(t.prompt_id for t in session.trials) == [0, 1, 2]
    assert [t.id for t in session.trials] == ["t0001", "t0002", "t0003"]
    texts = {0: ("two", "three"), 1: ("four", "five"), 2: ("red", "blue")}
    runs = tmp_path / "runs"
    for t in session.trials:
        assert {t.a.system, t.b.system} == {0, 1} and t.question == QUESTIONS[t.prompt_id]
        for side in (t.a, t.b):
            assert side.text == texts[t.prompt_id][side.system]
            assert re.fullmatch(r"[0-9a-f]{16}\.wav", side.audio) and not any(s in side.audio for s in SECRETS)
            source = runs / ("zzalphamodel", "zzbetamodel")[side.system] / f"audio/{t.prompt_id:05d}_0.wav"
            assert (session.audio_dir / side.audio).read_bytes() == source.read_bytes()
    assert len(list(session.audio_dir.iterdir())) == 6
    again = load_session(session.root)
    assert again == session and again.trial("t0002") == session.trial("t0002")


def test_side_order_is_random_and_seeded(tmp_path: Path) -> None:
    """Over many prompts both systems are played first; the same seed gives the same order."""
    questions = [f"question {i}" for i in range(40)]
    a = make_run(tmp_path / "a", ["x"] * 40, "a.ckpt", 300.0, questions=questions, audio=False)
    b = make_run(tmp_path / "b", ["y"] * 40, "b.ckpt", 500.0, questions=questions, audio=False)
    first = build_session(tmp_path / "s1", [a, b], seed=1)
    firsts = Counter(t.a.system for t in first.trials)
    assert 10 <= firsts[0] <= 30 and firsts[0] + firsts[1] == 40
    same = build_session(tmp_path / "s2", [a, b], seed=1)
    assert [(t.prompt_id, t.a.system) for t in same.trials] == [(t.prompt_id, t.a.system) for t in first.trials]
    assert first.id != same.id  # two sessions never share votes


def test_three_folders_give_every_pair(tmp_path: Path) -> None:
    alpha, beta = two_runs(tmp_path)
    gamma = make_run(tmp_path / "gamma", ["2", "4", "green"], "g.ckpt", 880.0)
    session = build_session(tmp_path / "s", [alpha, beta, gamma], criteria=["overall"])
    pairs = Counter(tuple(sorted((t.a.system, t.b.system))) for t in session.trials)
    assert pairs == {(0, 1): 3, (0, 2): 3, (1, 2): 3} and session.criteria == ["overall"]


def test_rater_order_is_stable_per_rater(tmp_path: Path) -> None:
    session = built(tmp_path)
    ann = [t.id for t in rater_order(session, "ann")]
    assert ann == [t.id for t in rater_order(load_session(session.root), "ann")]
    assert sorted(ann) == [t.id for t in session.trials]


def test_folders_that_answered_different_prompts_fail(tmp_path: Path) -> None:
    alpha, _ = two_runs(tmp_path)
    other = make_run(
        tmp_path / "other", ["a", "b", "c"], "o.ckpt", 500.0, questions=["q1", "what is two plus two", "name a colour"]
    )
    with pytest.raises(ValueError, match=r"other and .*zzalphamodel answered different prompts \(prompt 0: 'q1' vs"):
        build_session(tmp_path / "s", [alpha, other])
    fewer = make_run(tmp_path / "fewer", ["a", "b"], "f.ckpt", 500.0, questions=QUESTIONS[:2])
    with pytest.raises(ValueError, match=r"answered different prompts \(prompt ids \[2\] are in only one"):
        build_session(tmp_path / "s", [alpha, fewer])
    assert not (tmp_path / "s").exists()


def test_bad_build_input_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    alpha, beta = two_runs(tmp_path)
    with pytest.raises(ValueError, match="at least two predict folders"):
        build_session(tmp_path / "s", [alpha])
    with pytest.raises(ValueError, match=r"criteria must be distinct .* bad: \['Nice one'\]"):
        build_session(tmp_path / "s", [alpha, beta], criteria=["overall", "Nice one"])
    with pytest.raises(ValueError, match=r"zzalphamodel/replies.jsonl: prompt 0 has no reply #1"):
        build_session(tmp_path / "s", [alpha, beta], reply_index=1)
    (beta / "audio/00001_0.wav").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"zzbetamodel/audio/00001_0.wav \(prompt 1 of .*replies.jsonl\) does not exist"
    ):
        build_session(tmp_path / "s", [alpha, beta])
    assert not (tmp_path / "s").exists()
    alpha, beta = two_runs(tmp_path / "again")
    assert main(["build", str(tmp_path / "s"), str(alpha), str(beta)]) == 0
    assert "3 trials, 2 systems" in capsys.readouterr().out
    assert main(["build", str(tmp_path / "s"), str(alpha), str(beta)]) == 1  # would orphan the votes
    assert "session.json exists" in capsys.readouterr().err
    (tmp_path / "s" / "session.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match=r"session.json is not a listening session \(format is 'other'"):
        load_session(tmp_path / "s")
    with pytest.raises(FileNotFoundError, match="holds no session.json"):
        load_session(tmp_path)
