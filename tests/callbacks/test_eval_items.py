"""Per-item evaluation results: what BenchmarkCallback(save_items=True) writes, checked against the scripted replies
whose IQ / EQ are worked out by hand in test_benchmark_callback.py."""

from types import SimpleNamespace

import pytest
from test_benchmark_callback import GENERIC, scripted

from wavalign.callbacks.benchmark import BenchmarkCallback
from wavalign.callbacks.eval_items import read_items


def test_each_item_is_written_with_its_iq_eq_and_reply(tmp_path):
    cb = BenchmarkCallback([GENERIC], wer="reference", batch_size=2, save_items=True)
    trainer = SimpleNamespace(global_rank=0, world_size=1, is_global_zero=True, log_dir=str(tmp_path), global_step=7)
    cb.evaluate(trainer, scripted())
    rows = read_items(tmp_path / "eval_items" / "step7.jsonl")
    assert [r["source"].rsplit(":", 1)[1] for r in rows] == ["1", "2", "3", "4", "5"]  # file order, file:line ids
    assert [r["iq"] for r in rows] == [1.0, 0.0, 1.0, 1.0, None]  # the open question has no reference
    assert [r["eq"] for r in rows] == [4.0, 2.0, 5.0, 3.0, None]  # None: the judge called it unreliable
    assert rows[1]["text"] == "it is nine" and rows[0]["category"] == "arithmetic"
    assert all(r["transcript"] is None for r in rows)  # WER against references: no ASR transcript
    # the mean of the per-item IQ is the logged eval/iq
    assert sum(r["iq"] for r in rows[:4]) / 4 * 100 == pytest.approx(cb.last["eval/iq"])


def test_nothing_is_written_unless_asked_and_a_broken_line_is_named(tmp_path):
    cb = BenchmarkCallback([GENERIC], wer="reference", batch_size=2)
    trainer = SimpleNamespace(global_rank=0, world_size=1, is_global_zero=True, log_dir=str(tmp_path), global_step=1)
    cb.evaluate(trainer, scripted())
    assert not (tmp_path / "eval_items").exists()
    bad = tmp_path / "items.jsonl"
    bad.write_text('{"iq": 1.0}\nnot json\n')
    with pytest.raises(ValueError, match=r"items\.jsonl:2: not a JSON line"):
        read_items(bad)
