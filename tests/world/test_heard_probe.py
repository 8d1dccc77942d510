"""The heard probe (how the heard split's voices were chosen): candidate recordings of the heard split's questions,
their code change against the training recording, and the probe-heard command's errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wavalign.world.heard_probe import CANDIDATES, TRAINING_VOICE, code_change, edit_distance, write_variant_benches
from wavalign.world.prepare import prepare_world
from wavalign.world.settings import WorldSettings
from wavalign.world.tasks import split_questions
from wavalign.world.teacher import heard_examples


def test_edit_distance_and_code_change_by_hand() -> None:
    # [1, 2, 3] -> [1, 3, 4]: delete 2, append 4 = 2 edits; / longer length 3
    assert edit_distance([1, 2, 3], [1, 3, 4]) == 2 and code_change([1, 2, 3], [1, 3, 4]) == pytest.approx(2 / 3)
    assert edit_distance([], [5, 6]) == 2 and code_change([7, 8], [7, 8]) == 0.0 and code_change([], []) == 0.0
    assert edit_distance([1, 2, 3, 4], [2, 3, 4, 5]) == 2  # kitten/sitting-style shift: 1 deletion + 1 insertion


def test_variant_benches_record_the_heard_questions(tmp_path: Path) -> None:
    root = prepare_world(
        WorldSettings(str(tmp_path / "w"), seed=0, n_train=12, n_val=3, n_test=3, num_codes=8, max_fit_utterances=8),
        verbose=False,
    )
    picks = (CANDIDATES[0], ("rate +10%", ("en-us", 50, 193)))
    assert picks[0] == ("training", TRAINING_VOICE)
    out = write_variant_benches(root, tmp_path / "probe", n=3, seed=0, candidates=picks)
    expected = [e.question_text for e in heard_examples(split_questions(0)["train"], 3, 0)]
    for name, (bench, change) in out.items():
        rows = [json.loads(line) for line in bench.read_text().splitlines()]
        assert [r["question"] for r in rows] == expected
        assert all((bench.parent / r["audio"]).is_file() for r in rows)
    assert out["training"][1] == 0.0  # the reference against itself
    assert 0.0 < out["rate +10%"][1] <= 1.0  # a faster recording changes the codes
    with pytest.raises(ValueError, match="at least 1"):
        write_variant_benches(root, tmp_path / "p2", n=0)
    with pytest.raises(FileNotFoundError, match="codebook"):
        write_variant_benches(tmp_path / "nowhere", tmp_path / "p3", n=1)
