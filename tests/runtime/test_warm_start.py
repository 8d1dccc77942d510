"""ensure_checkpoint: a warm start on disk is reused, unless the data it was trained on has been rebuilt since."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wavalign.runtime.warm_start import ensure_checkpoint


def _touch(path: Path, mtime: float) -> Path:
    path.write_text("x")
    os.utime(path, (mtime, mtime))
    return path


def test_fresh_checkpoint_is_reused_and_a_stale_one_is_trained_again(tmp_path: Path) -> None:
    ckpt, stamp = _touch(tmp_path / "last.ckpt", 2000.0), _touch(tmp_path / "manifest.json", 1000.0)
    missing_config = tmp_path / "no_such_sft.yaml"  # reusing never reads the config; retraining needs it
    assert ensure_checkpoint(ckpt, missing_config, data_stamp=stamp) == ckpt
    assert ensure_checkpoint(ckpt, missing_config) == ckpt
    _touch(stamp, 3000.0)  # the world was rebuilt after the checkpoint was trained
    with pytest.raises(FileNotFoundError, match="no_such_sft.yaml does not exist"):
        ensure_checkpoint(ckpt, missing_config, data_stamp=stamp)
    with pytest.raises(FileNotFoundError, match="no_such_sft.yaml does not exist"):
        ensure_checkpoint(tmp_path / "absent.ckpt", missing_config)
