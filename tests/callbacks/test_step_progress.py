"""StepProgressBar on real short fits of the debug config: the bar counts optimiser steps to max_steps across
epoch boundaries (Lightning's own restarts at each epoch; Rich's reads "Epoch 14/-2"), and epoch-bound runs keep a
per-epoch bar with a 1-based description. Upstream behaviour replaced: lightning.pytorch.callbacks.progress
tqdm_progress.TQDMProgressBar.on_train_epoch_start (reset to the epoch's batches, "Epoch {current_epoch}") and
rich_progress.RichProgressBar._get_train_description ("Epoch {e}/{max_epochs - 1}")."""

from __future__ import annotations

import pytest

from wavalign.callbacks.step_progress import StepProgressBar
from wavalign.cli import main

CONFIG = "configs/debug_interleaved.yaml"


@pytest.fixture(autouse=True)
def at_root(root, monkeypatch):
    monkeypatch.chdir(root)


def fit(tmp_path, *args: str):
    return main(
        [
            "fit",
            "--config",
            CONFIG,
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
            "--trainer.limit_val_batches=0",
            "--trainer.enable_checkpointing=false",
            "--trainer.callbacks=[]",
            *args,
        ]
    )


def bar_of(cli) -> StepProgressBar:
    (bar,) = [c for c in cli.trainer.callbacks if isinstance(c, StepProgressBar)]
    return bar


def test_step_bound_bar_runs_over_steps_across_epochs(tmp_path, capsys):
    cli = fit(tmp_path, "--trainer.max_steps=3", "--trainer.limit_train_batches=2")
    assert cli.trainer.current_epoch >= 1  # the 3 steps did cross an epoch boundary
    bar = bar_of(cli).train_progress_bar
    assert (bar.n, bar.total) == (3, 3) and bar.desc.startswith("train step")
    out = capsys.readouterr().out  # Lightning's bars write to stdout
    assert "train step: 100%" in out and "3/3" in out and "Epoch" not in out


def test_epoch_bound_bar_is_one_based(tmp_path, capsys):
    cli = fit(tmp_path, "--trainer.max_steps=-1", "--trainer.max_epochs=2", "--trainer.limit_train_batches=1")
    bar = bar_of(cli).train_progress_bar
    assert bar.desc.startswith("Epoch 2/2") and bar.total == cli.trainer.num_training_batches
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 0" not in out


def test_no_bar_when_turned_off_or_brought_by_the_config(tmp_path):
    cli = fit(tmp_path, "--trainer.max_steps=1", "--trainer.enable_progress_bar=false")
    assert not [c for c in cli.trainer.callbacks if isinstance(c, StepProgressBar)]
    own = tmp_path / "own_bar.yaml"
    own.write_text("trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.TQDMProgressBar\n")
    cli = main(
        [
            "fit",
            "--config",
            CONFIG,
            "--config",
            str(own),
            "--trainer.max_steps=1",
            "--trainer.limit_val_batches=0",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
        ]
    )
    assert not [c for c in cli.trainer.callbacks if isinstance(c, StepProgressBar)]
    assert type(cli.trainer.progress_bar_callback).__name__ == "TQDMProgressBar"
