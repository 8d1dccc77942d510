"""RunSummary through the CLI on the debug config: a real 2-step fit (TensorBoard events, checkpoint), then a real
`test` of its checkpoint; the report must carry exactly what TensorBoard and the trainer hold."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, scalars
from torch.utils.tensorboard import SummaryWriter

from wavalign.callbacks.run_summary import (
    RunSummary,
    format_duration,
    read_event_series,
    render_markdown,
    render_text,
    with_resumed_history,
)
from wavalign.cli import main

CONFIG = "configs/debug_interleaved.yaml"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One short fit whose first evaluation is before any update (at_start) and whose last is the final validation."""
    tmp = tmp_path_factory.mktemp("summary")
    extra = tmp / "at_start.yaml"
    extra.write_text(
        "trainer:\n  callbacks:\n"
        "    - class_path: wavalign.callbacks.benchmark.BenchmarkCallback\n"
        "      init_args: {suites: [{class_path: wavalign.benchmarks.generic.GenericSuite, init_args: {name: debug, path: configs/data/debug_bench.jsonl}}], wer: reference, at_start: true}\n"
        "    - class_path: wavalign.callbacks.checkpoint.PeriodicCheckpoint\n"
        "      init_args: {every_n_train_steps: 10}\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        cli = main(
            [
                "fit",
                "--config",
                CONFIG,
                "--config",
                str(extra),
                "--trainer.max_steps=2",
                "--trainer.val_check_interval=2",
                "--trainer.logger.init_args.save_dir",
                str(tmp / "runs"),
                "--trainer.logger.init_args.version",
                "0",
                "--trainer.enable_progress_bar",
                "false",
            ]
        )
    summary = next(c for c in cli.trainer.callbacks if isinstance(c, RunSummary))
    return tmp, cli, summary


def test_fit_report_matches_tensorboard_and_is_written(fitted, capsys):
    tmp, cli, summary = fitted
    run_dir = tmp / "runs" / "debug_interleaved" / "version_0"
    logged = scalars(run_dir)  # conftest's own reader, independent of the callback's
    report = json.loads((run_dir / "summary.json").read_text())
    assert report == json.loads(json.dumps(summary.report))
    rows = {r["label"]: r for r in report["metrics"]}
    for label, name in (("IQ", "eval/iq"), ("EQ", "eval/eq"), ("WER", "eval/wer")):
        (s0, v0), *_, (s1, v1) = sorted(logged[name])
        assert (rows[label]["first_step"], rows[label]["last_step"]) == (s0, s1) == (0, 1)  # at_start, then step 2
        assert rows[label]["first"] == pytest.approx(v0) and rows[label]["last"] == pytest.approx(v1)
    assert rows["IQ"]["last"] == pytest.approx(float(cli.trainer.callback_metrics["eval/iq"]))
    assert rows["IQ"]["last_se"] == pytest.approx(dict(logged["eval/iq_se"])[1])
    assert report["global_step"] == report["max_steps"] == 2
    assert [Path(c).name for c in report["checkpoints"]] == ["last.ckpt"] and Path(report["checkpoints"][0]).is_file()
    assert Path(report["log_dir"]) == run_dir
    assert 0 < report["stage_seconds"]["fit"] <= report["wall_seconds"]
    assert report["command"].split()[1:4] == ["-m", "wavalign", "fit"] and report["configs"][0] == CONFIG
    md = (run_dir / "summary.md").read_text()
    assert f"| IQ | {rows['IQ']['first']:.2f} ± {rows['IQ']['first_se']:.2f} | {rows['IQ']['last']:.2f} ± " in md
    text = summary.text
    assert text.startswith("=== WavAlign fit: done at step 2 / 2 ===")
    assert "step 0 (start)" in text and str(report["checkpoints"][0]) in text
    assert f"-m wavalign test --config {CONFIG}" in text  # how to score the test split with this checkpoint


def test_test_stage_reports_the_test_metrics(fitted, root, monkeypatch, capsys):
    tmp, _, fit_summary = fitted
    monkeypatch.chdir(root)
    cli = main(
        [
            "test",
            "--config",
            CONFIG,
            "--ckpt_path",
            fit_summary.report["checkpoints"][0],
            "--trainer.logger.init_args.save_dir",
            str(tmp / "runs"),
            "--trainer.logger.init_args.version",
            "t",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    out = capsys.readouterr().out
    summary = next(c for c in cli.trainer.callbacks if isinstance(c, RunSummary))
    rows = {r["label"]: r for r in summary.report["metrics"]}
    assert summary.report["split"] == "test" and "first" not in rows["IQ"]
    for label, name in (("IQ", "eval/iq"), ("EQ", "eval/eq"), ("WER", "eval/wer")):
        assert rows[label]["last"] == pytest.approx(float(cli.trainer.callback_metrics[name]))
    assert f"test EQ       {rows['EQ']['last']:.3f}" in out
    assert summary.report["checkpoints"] == [fit_summary.report["checkpoints"][0]]  # the one that was tested
    assert (tmp / "runs" / "debug_interleaved" / "t" / "summary.json").is_file()


def test_validate_reports_and_disabled_writes_nothing(root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(root)
    args = [
        "validate",
        "--config",
        CONFIG,
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger.init_args.save_dir",
    ]
    cli = main([*args, str(tmp_path / "on")])
    report = json.loads(next((tmp_path / "on").rglob("summary.json")).read_text())
    assert report["stage"] == "validate" and report["split"] == "validation" and report["checkpoints"] == []
    assert report["metrics"][0]["last"] == pytest.approx(float(cli.trainer.callback_metrics["eval/iq"]))
    out = capsys.readouterr().out
    assert "=== WavAlign validate: done at step 0" in out
    assert re.search(r"^eval: scored items (\d+)/\1 \(100%", out, re.M)  # the benchmark says how far it is
    main([*args, str(tmp_path / "off"), "--summary.enabled", "false"])
    assert not list((tmp_path / "off").rglob("summary.*")) and "=== WavAlign" not in capsys.readouterr().out


def test_read_event_series_counts_audio_clips_and_sorts_steps(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    for step in (5, 0, 3):
        writer.add_scalar("eval/iq", float(step) * 2, step)
    for step in (0, 100):
        writer.add_audio("audio/sample_0", np.zeros((1, 160), dtype=np.float32), step, sample_rate=16000)
    writer.add_audio("audio/sample_1", np.zeros((1, 160), dtype=np.float32), 0, sample_rate=16000)
    writer.close()
    series, audio = read_event_series(tmp_path)
    assert series["eval/iq"] == [(0, 0.0), (3, 6.0), (5, 10.0)]
    assert audio == {"audio/sample_0": 2, "audio/sample_1": 1}


def test_render_text_without_metrics_says_what_is_missing():
    report = {
        "stage": "fit",
        "split": "validation",
        "global_step": 3,
        "max_steps": -1,
        "wall_seconds": 75.4,
        "stage_seconds": {"world": 42.0, "fit": 33.4},
        "metrics": [{"label": "IQ", "name": "eval/iq"}],
        "checkpoints": [],
        "log_dir": None,
        "rollout_audio": {},
        "files": [],
        "configs": [],
    }
    text = render_text(report)
    assert text.splitlines()[0] == "=== WavAlign fit: done at step 3 ==="  # no "/ -1" for an epoch-bound run
    assert "no eval/iq were logged" in text and "wall time:      1 min 15 s (world 42 s, fit 33 s)" in text
    assert "checkpoint:     none written" in text


@pytest.mark.parametrize(
    "seconds, text", [(0.4, "0 s"), (59.6, "1 min 0 s"), (766, "12 min 46 s"), (3725, "1 h 02 min")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_bad_file_stem_is_refused():
    with pytest.raises(ValueError, match="summary.file_stem"):
        RunSummary(file_stem="a/b")
    assert math.isfinite(RunSummary().stage_seconds.get("x", 0.0))


def test_a_resumed_run_shows_the_earlier_versions_first_evaluation_and_never_one_twice(tmp_path):
    """version_0 evaluated at steps 0 and 9 and was interrupted; version_1 resumed from its checkpoint and evaluated
    at step 19: first = version_0's step 0, last = version_1's step 19. Without the earlier version (or with one
    evaluation in all), the table has one column, not the same figures twice."""
    v0, v1 = tmp_path / "run" / "version_0", tmp_path / "run" / "version_1"
    for folder, points in ((v0, [(0, 10.0), (9, 20.0)]), (v1, [(19, 30.0)])):
        with SummaryWriter(str(folder)) as w:
            for step, value in points:
                w.add_scalar("eval/iq", value, step)
    (v0 / "checkpoints").mkdir()
    series, _ = read_event_series(v1)
    merged = with_resumed_history(series, str(v0 / "checkpoints" / "on_exception.ckpt"), str(v1))
    assert merged["eval/iq"] == [(0, 10.0), (9, 20.0), (19, 30.0)]
    assert with_resumed_history(series, None, str(v1)) == series
    report = {
        "stage": "fit",
        "split": "validation",
        "global_step": 20,
        "max_steps": 20,
        "wall_seconds": 1.0,
        "stage_seconds": {},
        "checkpoints": [],
        "log_dir": None,
        "rollout_audio": {},
        "files": [],
        "configs": [],
        "command": None,
        "finished": "now",
        "metrics": [{"label": "IQ", "name": "eval/iq", "last_step": 19, "last": 30.0}],
    }
    text = render_text(report)
    assert "validation               step 19\n  IQ                       30.00\n" in text
    assert "| validation | step 19 |\n|---|---|\n| IQ | 30.00 |" in render_markdown(report)
