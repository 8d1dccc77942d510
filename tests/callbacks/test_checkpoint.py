"""PeriodicCheckpoint through the CLI on the debug config: a checkpoint every N steps, and last.ckpt at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wavalign.callbacks.checkpoint import PeriodicCheckpoint
from wavalign.cli import main


def fit(tmp_path: Path, steps: int) -> Path:
    main(
        [
            "fit",
            "--config",
            "configs/debug_interleaved.yaml",
            f"--trainer.max_steps={steps}",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.logger.init_args.name",
            "run",
        ]
    )
    return tmp_path / "run" / "version_0" / "checkpoints"


def step_of(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


@pytest.mark.parametrize("steps, periodic", [(13, 10), (2, None)])
def test_debug_config_checkpoints_every_10_steps_and_at_the_end(tmp_path, root, monkeypatch, steps, periodic):
    monkeypatch.chdir(root)
    folder = fit(tmp_path, steps)
    assert step_of(folder / "last.ckpt") == steps  # also when the run is shorter than one interval
    kept = [p for p in folder.glob("*.ckpt") if p.name != "last.ckpt"]
    assert [step_of(p) for p in kept] == ([periodic] if periodic else [])


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError, match="every_n_train_steps must be >= 1"):
        PeriodicCheckpoint(every_n_train_steps=0)
