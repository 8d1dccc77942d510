"""The evaluation and analysis callbacks through the CLI on the debug config: what `validate` prints, and what a
short `fit` writes to TensorBoard."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import scalars

from wavalign.cli import main

CONFIG = "configs/debug_interleaved.yaml"


@pytest.fixture(autouse=True)
def at_root(root, monkeypatch):
    monkeypatch.chdir(root)


def run(subcommand: str, tmp_path: Path, *args: str):
    return main(
        [
            subcommand,
            "--config",
            CONFIG,
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
            "--trainer.logger.init_args.version",
            "0",
            "--trainer.enable_progress_bar",
            "false",
            *args,
        ]
    )


def test_validate_prints_iq_eq_wer(tmp_path, capsys):
    cli = run("validate", tmp_path)
    table = capsys.readouterr().out
    for name in ("eval/iq", "eval/eq", "eval/wer", "eval/debug/iq", "eval/debug/eq", "eval/debug/wer"):
        assert name in table and name in cli.trainer.callback_metrics, name
    metrics = cli.trainer.callback_metrics
    assert 0 <= float(metrics["eval/iq"]) <= 100 and 1 <= float(metrics["eval/eq"]) <= 5


def test_fit_logs_geometry_and_benchmark_every_n_steps(tmp_path):
    every_step = tmp_path / "every_step.yaml"  # a later config replaces the callback list of the debug config
    every_step.write_text(
        "trainer:\n  callbacks:\n"
        "    - class_path: wavalign.callbacks.benchmark.BenchmarkCallback\n"
        "      init_args: {suites: [{class_path: wavalign.benchmarks.generic.GenericSuite, init_args: {name: debug, path: configs/data/debug_bench.jsonl}}], wer: reference, every_n_steps: 1}\n"
        "    - class_path: wavalign.callbacks.geometry.GradientGeometryCallback\n"
        "      init_args: {every_n_steps: 1}\n"
    )
    run("fit", tmp_path, "--config", str(every_step), "--trainer.max_steps=2", "--trainer.limit_val_batches=0")
    logs = scalars(tmp_path / "runs" / "debug_interleaved" / "version_0")
    for tag in ("grad/norm_text", "grad/norm_speech", "grad/cos_text_speech"):
        assert [step for step, _ in logs[tag]] == [0, 1], tag
    for tag in ("eval/iq", "eval/eq", "eval/wer"):
        assert [step for step, _ in logs[tag]] == [0, 1], tag  # after the first and the second optimiser step
    assert "gate/lambda" in logs


def test_at_start_evaluates_before_the_first_update(tmp_path):
    at_start = tmp_path / "at_start.yaml"
    at_start.write_text(
        "trainer:\n  callbacks:\n"
        "    - class_path: wavalign.callbacks.benchmark.BenchmarkCallback\n"
        "      init_args: {suites: [{class_path: wavalign.benchmarks.generic.GenericSuite, init_args: {name: debug, path: configs/data/debug_bench.jsonl}}], wer: reference, at_start: true}\n"
    )
    cli = run("fit", tmp_path, "--config", str(at_start), "--trainer.max_steps=2", "--trainer.limit_val_batches=0")
    (cb,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "BenchmarkCallback"]
    logs = scalars(tmp_path / "runs" / "debug_interleaved" / "version_0")
    for tag in ("eval/iq", "eval/eq", "eval/wer"):
        ((step, value),) = logs[tag]  # once, before training; no validation ran afterwards
        assert step == 0 and value == pytest.approx(cb.last[tag]), tag
