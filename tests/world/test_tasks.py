"""The world's task tables: one right answer per question, closed vocabulary, splits disjoint by question."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from wavalign.world.tasks import (
    FAMILIES,
    NUMBERS,
    SKILL_FAMILIES,
    SPLITS,
    WORLD_STYLES,
    all_questions,
    make_examples,
    make_splits,
    sentences,
    split_questions,
    system_prompt,
    vocabulary,
    words,
)


def test_questions_are_unique_and_replies_end_with_the_answer() -> None:
    qs = all_questions()
    assert len({q.text for q in qs}) == len(qs) and [q.qid for q in qs] == list(range(len(qs)))
    assert set(Counter(q.family for q in qs)) == set(FAMILIES)
    for q in qs:
        n_answer = len(words(q.answer))
        assert words(q.reply)[-n_answer:] == words(q.answer) and n_answer == (3 if q.family == "repeat" else 1), q


def test_arithmetic_and_counting_are_right() -> None:
    value = {w: i for i, w in enumerate(NUMBERS)}
    for q in all_questions():
        m = re.fullmatch(r"what is (\w+) (plus|minus) (\w+)", q.text)
        if m:
            a, b = value[m.group(1)], value[m.group(3)]
            assert value[q.answer] == (a + b if m.group(2) == "plus" else a - b)
        m = re.fullmatch(r"which is (bigger|smaller) (\w+) or (\w+)", q.text)
        if m:
            pick = max if m.group(1) == "bigger" else min
            assert value[q.answer] == pick(value[m.group(2)], value[m.group(3)])
        m = re.fullmatch(r"what number comes (after|before) (\w+)", q.text)
        if m:
            assert value[q.answer] == value[m.group(2)] + (1 if m.group(1) == "after" else -1)
        m = re.fullmatch(r"repeat after me (\w+ \w+ \w+)", q.text)
        if m:
            assert q.answer == m.group(1) and all(w in value for w in words(q.answer))


def test_splits_are_disjoint_by_question_and_hold_out_only_skill_families() -> None:
    qs = split_questions(seed=3)
    ids = {s: {q.qid for q in qs[s]} for s in SPLITS}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert sum(len(v) for v in ids.values()) == len(all_questions())
    assert {q.family for q in qs["train"]} == set(FAMILIES)
    for s in ("val", "test"):  # a held-out fact question would be unanswerable: its words occur nowhere in training
        assert {q.family for q in qs[s]} == set(SKILL_FAMILIES)
    heard = {w for q in qs["train"] for w in words(q.text)}
    assert all(set(words(q.text)) <= heard for s in ("val", "test") for q in qs[s])
    ex = make_splits(seed=3, n_train=200, n_val=40, n_test=40)
    texts = {s: {e.question_text for e in ex[s]} for s in SPLITS}
    assert not (texts["train"] & texts["test"]) and not (texts["train"] & texts["val"])


def test_examples_are_deterministic_distinct_and_balanced() -> None:
    a, b = make_splits(seed=1, n_train=100, n_val=18, n_test=18), make_splits(seed=1, n_train=100, n_val=18, n_test=18)
    assert a == b and a != make_splits(seed=2, n_train=100, n_val=18, n_test=18)
    train = a["train"]
    assert len(train) == 100 and len({(e.qid, e.style) for e in train}) == 100
    assert set(Counter(e.family for e in train).values()) == {10}  # round-robin over the 10 families
    assert set(Counter(e.family for e in a["val"]).values()) == {6}  # over the 3 skill families
    assert {e.style for e in train} <= set(WORLD_STYLES) and len({e.style for e in train}) == len(WORLD_STYLES)
    assert train[0].system_prompt == f"style: {train[0].style}"


def test_too_many_examples_is_a_clear_error() -> None:
    qs = split_questions(0)["test"]
    with pytest.raises(ValueError, match="only"):
        make_examples(qs, len(qs) * len(WORLD_STYLES) + 1, random.Random(0))
    with pytest.raises(ValueError, match="unknown world style"):
        system_prompt("angry")


def test_vocabulary_and_sentences_cover_everything() -> None:
    vocab = vocabulary()
    assert vocab == sorted(set(vocab)) and len(vocab) < 300
    covered = set(vocab)
    for q in all_questions():
        assert set(words(q.text)) <= covered and set(words(q.reply)) <= covered
    for style in WORLD_STYLES:
        assert set(words(system_prompt(style))) <= covered
    sents = set(sentences())
    assert all(q.text in sents and q.reply in sents for q in all_questions())


def test_vocabulary_is_in_the_asr_dictionary() -> None:
    """Every word must be pronounceable by the offline ASR judge (pocketsphinx's bundled CMU dictionary)."""
    pocketsphinx = pytest.importorskip("pocketsphinx")
    from pathlib import Path

    dict_path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    if not dict_path.is_file():
        pytest.skip(f"no CMU dictionary at {dict_path}")
    known = {line.split(maxsplit=1)[0] for line in dict_path.read_text().splitlines() if line.strip()}
    assert [w for w in vocabulary() if w not in known] == []
