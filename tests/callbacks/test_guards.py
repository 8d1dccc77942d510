"""RunGuards through the CLI on the debug config: NaN gradients skip the update (weights untouched, counted) and stop
the run when they persist; non-finite rewards never reach the gate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import scalars

from wavalign.callbacks.guards import NonFiniteTraining, RunGuards
from wavalign.cli import main
from wavalign.data.schema import DialogueExample
from wavalign.judges.base import Judge, JudgeScore
from wavalign.policy.base import Reply
from wavalign.step.scoring import build_requests, score_groups

pytestmark = pytest.mark.fault


def fit(tmp_path: Path, steps: int, nan_steps: list[int], extra: list[str] = []):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "callbacks": [
                        {
                            "class_path": "wavalign.callbacks.checkpoint.PeriodicCheckpoint",
                            "init_args": {"every_n_train_steps": 10},
                        },
                        {"class_path": "guard_toys.NanGradAt", "init_args": {"steps": nan_steps}},
                    ]
                }
            }
        )
    )
    cli = main(
        [
            "fit",
            "--config",
            "configs/debug_interleaved.yaml",
            "--config",
            str(overlay),
            f"--trainer.max_steps={steps}",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.logger.init_args.name",
            "run",
            *extra,
        ]
    )
    return cli


def test_a_nan_gradient_skips_the_update_and_is_counted(tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    cli = fit(tmp_path, 5, [1, 3])
    nan = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "NanGradAt")
    for step in (1, 3):
        assert torch.equal(nan.before[step], nan.after[step]), f"step {step} changed the weights"
    assert not torch.equal(nan.before[1], nan.after[3])  # the other steps did train
    skipped = dict(scalars(tmp_path / "run")["guard/skipped_steps"])
    assert skipped[0] == 0 and skipped[1] == 1 and skipped[3] == 2 and skipped[4] == 2
    (ckpt,) = (tmp_path / "run" / "version_0" / "checkpoints").glob("*.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_persistent_nan_gradients_stop_the_run_with_a_clean_checkpoint(tmp_path, root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    with pytest.raises(NonFiniteTraining, match="2 steps in a row had a NaN/inf loss or gradient"):
        fit(tmp_path, 8, [2, 3, 4], ["--guards.max_nonfinite_steps=2"])
    ckpt = tmp_path / "run" / "version_0" / "checkpoints" / "on_exception.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert "--ckpt_path last" in capsys.readouterr().out


def test_guard_limits_must_be_positive():
    with pytest.raises(ValueError, match="must be >= 1"):
        RunGuards(max_failed_judge_steps=0)


class NanJudge(Judge):
    def score(self, requests):
        return [JudgeScore(float("nan") if i % 2 else 4.0) for i, _ in enumerate(requests)]


def test_non_finite_scores_become_unreliable_before_the_gate_and_advantages():
    ex = DialogueExample(messages=[{"role": "user", "content": "hi"}], target_text="hello", question_text="hi")
    scored = score_groups(NanJudge(), build_requests([ex], [Reply("a", []), Reply("b", [])], 2, None), 2)
    assert scored.reliable.tolist() == [[True, False]]
    assert torch.isfinite(scored.rewards).all() and scored.scores[1].error == "non-finite score from NanJudge"
