"""`--ckpt_path last` resumes only the run the command describes: a finished run resumed with other
hyperparameters is refused naming the keys (and writes no config.yaml), keys meant to change pass, and
`--resume_changes` accepts named ones."""

from __future__ import annotations

import pytest
import torch

from wavalign.cli import main
from wavalign.runtime.run_config import CONFIG_KEY, ConfigMismatch, differing_keys, flat_config

pytestmark = pytest.mark.fault


def test_flat_config_and_the_keys_that_differ():
    saved = flat_config({"model": {"beta": 0.01, "sampling": {"top_p": 0.9}}, "trainer": {"max_steps": 20}, "x": [1]})
    assert saved == {"model.beta": "0.01", "model.sampling.top_p": "0.9", "trainer.max_steps": "20", "x": "[1]"}
    now = dict(saved, **{"model.beta": "0.05", "trainer.max_steps": "40", "seed_everything": "1"})
    assert differing_keys(saved, now) == ["model.beta", "seed_everything"]  # max_steps is meant to change
    assert differing_keys(saved, now, accepted=["model"]) == ["seed_everything"]  # a prefix accepts its subtree


CHECKPOINTS = '--trainer.callbacks=[{"class_path": "wavalign.callbacks.checkpoint.PeriodicCheckpoint"}]'


def run(tmp_path, *extra):
    return main(
        [
            "fit",
            "--config",
            "configs/debug_interleaved.yaml",
            "--trainer.max_steps=2",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
            CHECKPOINTS,
            "--model.sampling.max_new_tokens=8",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            *extra,
        ]
    )


def test_resuming_a_finished_run_with_other_settings_is_refused_naming_the_keys(tmp_path, root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    run(tmp_path)
    versions = tmp_path / "debug_interleaved"
    with pytest.raises(ConfigMismatch) as err:
        run(tmp_path, "--model.beta", "0.05", "--seed_everything", "1", "--ckpt_path", "last")
    text = str(err.value)
    assert "model.beta: 0.01 -> 0.05" in text and "seed_everything: 0 -> 1" in text and "(2 key(s))" in text
    assert "--resume_changes model.beta,seed_everything" in text
    assert sorted(p.name for p in versions.iterdir()) == ["version_0"]  # no version, no config.yaml that lies
    run(tmp_path, "--trainer.max_steps=3", "--ckpt_path", "last")  # the step limit is meant to change
    assert "done at step 3 / 3" in capsys.readouterr().out
    run(
        tmp_path,
        "--trainer.max_steps=4",
        "--model.beta",
        "0.05",
        "--resume_changes",
        "model.beta",
        "--ckpt_path",
        "last",
    )
    last = torch.load(versions / "version_2" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 4 and last[CONFIG_KEY]["model.beta"] == "0.05"
