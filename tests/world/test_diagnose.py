"""World reply diagnosis: restatement, answer kinds and the per-family table, by hand; the CLI on a tiny world."""

from __future__ import annotations

from pathlib import Path

import pytest

from wavalign.world.diagnose import ReplyDiagnosis, diagnose, format_table, summarise
from wavalign.world.tasks import Question

SMALLER = Question(
    0, "comparison", "which is smaller three or seventeen", "the smaller of three and seventeen is three", "three"
)
REPEAT = Question(
    1, "repeat", "repeat after me ten fifteen eleven", "you said ten fifteen eleven", "ten fifteen eleven"
)


def test_comparison_replies_are_classed_by_restatement_and_answer_kind() -> None:
    assert diagnose(SMALLER, "the smaller of three and seventeen is three") == ReplyDiagnosis(
        "comparison", True, True, "right"
    )
    assert diagnose(SMALLER, "The smaller of three and seventeen is seventeen.") == ReplyDiagnosis(
        "comparison", False, True, "other_option"
    )
    assert diagnose(SMALLER, "the smaller of three and seven is seven") == ReplyDiagnosis(
        "comparison", False, False, "outside"
    )
    # right answer after a misheard restatement: correct (the IQ rule), not restated
    assert diagnose(SMALLER, "the smaller of three and seven is three") == ReplyDiagnosis(
        "comparison", True, False, "right"
    )
    assert diagnose(SMALLER, "") == ReplyDiagnosis("comparison", False, False, "outside")


def test_multi_word_answers_split_off_whole() -> None:
    assert diagnose(REPEAT, "you said ten fifteen eleven") == ReplyDiagnosis("repeat", True, True, None)
    assert diagnose(REPEAT, "you said ten eleven eleven") == ReplyDiagnosis("repeat", False, True, None)
    assert diagnose(REPEAT, "eleven") == ReplyDiagnosis("repeat", False, False, None)


def test_summary_rates_and_table_by_hand() -> None:
    ds = [
        diagnose(SMALLER, "the smaller of three and seventeen is three"),
        diagnose(SMALLER, "the smaller of three and seventeen is seventeen"),
        diagnose(SMALLER, "the smaller of three and seventeen is nine"),
        diagnose(SMALLER, "the smaller of three and seven is three"),
        diagnose(REPEAT, "you said ten fifteen eleven"),
        diagnose(REPEAT, "you said ten ten ten"),
    ]
    s = summarise(ds)
    assert s["comparison"] == {
        "n": 4,
        "accuracy": 50.0,
        "restated": 75.0,
        "right": 50.0,
        "other_option": 25.0,
        "outside": 25.0,
    }
    assert s["repeat"] == {"n": 2, "accuracy": 50.0, "restated": 100.0}
    assert s["all"] == {"n": 6, "accuracy": 50.0, "restated": pytest.approx(500 / 6)}
    lines = format_table(s).splitlines()
    assert lines[0].split() == ["family", "n", "accuracy", "restated", "right", "other_option", "outside"]
    assert lines[-1].split() == ["all", "6", "50.0", "83.3", "-", "-", "-"]
    assert lines[1].split() == ["comparison", "4", "50.0", "75.0", "50.0", "25.0", "25.0"]


def test_diagnose_cli_errors_name_the_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from wavalign.world.__main__ import main

    assert main(["diagnose", "--checkpoint", str(tmp_path / "nope.ckpt")]) == 2
    assert "nope.ckpt does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["info", "--trainer.max_steps=3"])  # pass-through arguments belong to diagnose only
