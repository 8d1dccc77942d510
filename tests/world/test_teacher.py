"""The world's knobs: an imperfect teacher (wrong answers per question, wrong styles per example) and the heard split
(training questions in new recordings). Both off by default, leaving today's world byte for byte."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from wavalign.world.extras import write_world_extras
from wavalign.world.prepare import HEARD, manifest_settings, prepare_world, to_row, world_splits
from wavalign.world.settings import WorldSettings
from wavalign.world.tasks import SPLITS, all_questions, make_splits, split_questions, words
from wavalign.world.teacher import HEARD_VOICES, heard_examples, imperfect_teacher, wrong_answer

TINY = dict(seed=0, n_train=12, n_val=3, n_test=3, num_codes=8, frame_ms=40.0, max_fit_utterances=8)


def _rows(root: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (root / name).read_text().splitlines()]


def test_perfect_teacher_is_todays_world() -> None:
    train = make_splits(0, 300, 30, 30)["train"]
    assert imperfect_teacher(train, 0.0, 0.0, seed=0) == train
    # no new keys in a default row or in the default settings: a cached default world stays valid
    assert set(to_row(train[0])) == {
        "messages",
        "audios",
        "sft_target_text",
        "sft_target_audio",
        "task_type",
        "question_text",
        "reference_answer",
        "style",
        "family",
        "qid",
    }
    settings = manifest_settings(WorldSettings(n_train=1, n_val=1, n_test=1))
    assert "teacher" not in settings and "heard" not in settings


def test_wrong_answers_are_per_question_and_wrong_styles_per_example() -> None:
    train = make_splits(0, 300, 30, 30)["train"]
    taught = imperfect_teacher(train, 0.25, 0.2, seed=0)
    assert [(e.qid, e.style, e.reference_answer) for e in taught] == [
        (e.qid, e.style, e.reference_answer) for e in train
    ]
    by_qid: dict[int, set[str]] = defaultdict(set)
    for right, ex in zip(train, taught):
        by_qid[ex.qid].add(ex.reply_text)
        if ex.answer_wrong:
            answer = words(ex.reference_answer)
            got = words(ex.reply_text)
            assert got[: -len(answer)] == words(right.reply_text)[: -len(answer)]  # same restatement
            assert got[-len(answer) :] != answer  # ... and a wrong answer of the same length
        else:
            assert ex.reply_text == right.reply_text
        assert ex.demo_style is None or ex.demo_style != ex.style
    assert all(len(replies) == 1 for replies in by_qid.values())  # one (right or wrong) reply per question
    wrong_q = {e.qid for e in taught if e.answer_wrong}
    assert len(wrong_q) == round(0.25 * len(by_qid))
    assert sum(e.demo_style is not None for e in taught) == round(0.2 * len(train))
    assert imperfect_teacher(train, 0.25, 0.2, seed=0) == taught  # deterministic
    with pytest.raises(ValueError, match="wrong_answer"):
        imperfect_teacher(train, 1.5, 0.0, seed=0)


def test_a_wrong_answer_is_of_the_questions_kind() -> None:
    import random

    rng = random.Random(0)
    for q in all_questions()[::37]:
        w = wrong_answer(q, rng)
        family_answers = {x.answer for x in all_questions() if x.family == q.family}
        assert w != q.answer
        if q.family == "repeat":  # one of the three numbers changed
            assert sum(a != b for a, b in zip(words(w), words(q.answer))) == 1
        else:
            assert w in family_answers


def test_heard_examples_are_training_questions_balanced_over_families() -> None:
    train_q = split_questions(0)["train"]
    heard = heard_examples(train_q, 60, seed=0)
    assert {e.qid for e in heard} <= {q.qid for q in train_q}
    assert len({e.family for e in heard}) == 10 and not any(e.answer_wrong for e in heard)


def test_prepared_world_with_knobs(tmp_path: Path) -> None:
    knobs = WorldSettings(str(tmp_path / "w"), teacher_wrong_answer=0.5, teacher_wrong_style=0.5, n_heard=6, **TINY)
    root = prepare_world(knobs, verbose=False)
    assert world_splits(root) == (*SPLITS, HEARD)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["settings"]["teacher"] == {"wrong_answer": 0.5, "wrong_style": 0.5}
    assert manifest["counts"][HEARD] == 6
    train = _rows(root, "train.jsonl")
    wrong = [r for r in train if r.get("teacher_answer_wrong")]
    assert wrong and all(r["sft_target_audio"].endswith("_x.wav") for r in wrong)
    assert all(not r["sft_target_text"].endswith(r["reference_answer"]) for r in wrong)
    restyled = [r for r in train if "demo_style" in r]
    assert restyled and all(f"_{r['demo_style']}" in r["sft_target_audio"] for r in restyled)
    heard = _rows(root, "heard.jsonl")
    train_questions = {q.text for q in split_questions(0)["train"]}
    assert len(heard) == 6 and all(r["question_text"] in train_questions for r in heard)
    assert [r["audios"][0].split("_v")[1] for r in heard] == [f"{i % len(HEARD_VOICES)}.wav" for i in range(6)]
    assert all(r["sft_target_text"].split()[-1] == r["reference_answer"].split()[-1] for r in heard)
    for r in heard + train:
        for rel in (r["audios"][0], r["sft_target_audio"]):
            assert (root / rel).is_file(), rel

    write_world_extras(root, profile_samples=12)
    bench = _rows(root, "heard.bench.jsonl")
    assert [b["question"] for b in bench] == [r["question_text"] for r in heard]
    assert all(len(r["audio_codes"][0]) > 0 for r in _rows(root, "heard.codes.jsonl"))

    # switching the knobs off rebuilds today's world: no heard files, no wrong demonstrations left behind
    prepare_world(WorldSettings(str(root), **TINY), verbose=False)
    assert world_splits(root) == SPLITS and not list((root / "audio").glob("h_*.wav"))
    assert not any("teacher_answer_wrong" in r for r in _rows(root, "train.jsonl"))


def test_prepare_cli_rejects_a_share_outside_0_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wavalign.world.__main__ import main

    assert main(["prepare", "--out", str(tmp_path / "w"), "--teacher-wrong-answer", "1.5", "--no-extras"]) == 2
    assert "wrong_answer" in capsys.readouterr().err and not (tmp_path / "w" / "manifest.json").exists()
