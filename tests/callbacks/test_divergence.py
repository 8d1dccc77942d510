"""DivergenceGuard on the real CLI with a learning rate of 1e30: the run stops before the exploded weights reach any
checkpoint, the hint names a checkpoint that continues, NaN/inf sampling probabilities stop it clearly; and a loss
spike has its update skipped, on a real Lightning run."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml

from wavalign.callbacks.divergence import Diverged, DivergenceGuard, sampling_guard
from wavalign.cli import main

pytestmark = pytest.mark.fault


def fit(tmp_path: Path, steps: int, callbacks: list[dict], extra: list[str] = ()):
    overlay = tmp_path / "overlay.yaml"
    checkpoint = {
        "class_path": "wavalign.callbacks.checkpoint.PeriodicCheckpoint",
        "init_args": {"every_n_train_steps": 2},
    }
    overlay.write_text(yaml.safe_dump({"trainer": {"callbacks": [checkpoint, *callbacks]}}))
    return main(
        [
            "fit",
            "--config",
            "configs/debug_interleaved.yaml",
            "--config",
            str(overlay),
            f"--trainer.max_steps={steps}",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
            "--model.sampling.max_new_tokens=8",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.logger.init_args.name",
            "run",
            *extra,
        ]
    )


def saved(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "run").glob("version_*/checkpoints/*.ckpt"))


def largest_weight(path: Path) -> float:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return max(float(t.abs().max()) for t in state.values() if t.is_floating_point() and t.numel())


def test_lr_1e30_stops_at_step_one_with_no_checkpoint(tmp_path, root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    with pytest.raises(
        Diverged, match=r"step 1 diverged: weight policy\..* reached \|w\| = 1e\+30 > divergence.max_param_abs=10000"
    ):
        fit(tmp_path, 4, [], ["--model.optimizer.init_args.lr=1e30"])
    assert saved(tmp_path) == []
    assert (
        "no checkpoint of them was written; this run has no earlier checkpoint: start again" in capsys.readouterr().out
    )


def test_nan_sampling_probabilities_stop_the_run_clearly(tmp_path, root, monkeypatch):
    """With the weight check off, the 1e30 weights reach sampling: a clear Diverged, and still no checkpoint."""
    monkeypatch.chdir(root)
    with pytest.raises(Diverged, match="sampling probabilities are NaN or infinite at step 1"):
        fit(tmp_path, 4, [], ["--model.optimizer.init_args.lr=1e30", "--divergence.max_param_abs=null"])
    assert saved(tmp_path) == []
    with pytest.raises(Diverged, match="at step 7"), sampling_guard(7):
        torch.multinomial(torch.tensor([float("nan"), 1.0]), 1)


def test_divergence_after_good_checkpoints_leaves_only_usable_ones_and_the_hint_resumes(
    tmp_path, root, monkeypatch, capsys
):
    """Checkpoints every 2 steps; the learning rate jumps to 1e30 for the update of step 3 (global step 4 after
    it). Steps 2's last.ckpt stays the newest, holds ordinary weights, and `--ckpt_path last` continues from it."""
    monkeypatch.chdir(root)
    with pytest.raises(Diverged, match="step 4 diverged"):
        fit(tmp_path, 6, [{"class_path": "guard_toys.LrAt", "init_args": {"step": 3, "lr": 1e30}}])
    files = saved(tmp_path)
    assert [p.name for p in files] == ["epoch=0-step=2.ckpt", "last.ckpt"]
    assert all(largest_weight(p) < 100 for p in files)
    out = capsys.readouterr().out
    assert "stopped at step 4 (Diverged)" in out and f"`--ckpt_path last` resumes {files[1]}" in out
    fit(tmp_path, 4, [], ["--ckpt_path", "last"])
    assert "resume: continuing from" in capsys.readouterr().out
    assert (
        torch.load(tmp_path / "run" / "version_1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[
            "global_step"
        ]
        == 4
    )


class SpikyLine(pl.LightningModule):
    """One weight w fitted to 0 by SGD on loss (w - 0)^2 + 1, times 1000 at step `spike`."""

    def __init__(self, spike: int) -> None:
        super().__init__()
        self.spike, self.w = spike, torch.nn.Parameter(torch.tensor([2.0]))
        self.seen: dict[int, float] = {}

    def training_step(self, batch, batch_idx):
        self.seen[self.global_step] = float(self.w)
        loss = (self.w**2).sum() + 1.0
        return loss * 1000 if self.global_step == self.spike else loss

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(64, 1), batch_size=1)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_loss_spike_skips_its_update(tmp_path):
    """Window 4: the median |loss| of the 4 steps before step 6 is about 1 + w^2 < 5 (w < 2), far below 1000 x that;
    so step 6's update is skipped (w unchanged from step 6 to 7) and counted; step 7 trains again."""
    model, guard = SpikyLine(spike=6), DivergenceGuard(loss_spike=10.0, spike_window=4)
    pl.Trainer(
        max_steps=9,
        callbacks=[guard],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(model)
    w = model.seen
    assert w[7] == w[6] and w[6] != w[5] and w[8] != w[7]
    assert guard.spike_skips == 1 and guard.spikes_in_a_row == 0
    assert w[6] == pytest.approx(2.0 * 0.98**6)  # SGD on w^2 with lr 0.01: w <- w (1 - 0.02), six updates


def test_the_median_rule_by_hand():
    guard = DivergenceGuard(loss_spike=10.0, spike_window=3)
    guard.recent.extend([0.2, 3.0, 2.0])  # median 2.0
    assert not guard.is_spike(20.0) and guard.is_spike(20.01)
    guard.recent.clear()
    guard.recent.extend([0.01, 0.02, 0.03])  # median 0.02, below the 1-nat floor: the bar is 10 x 1.0
    assert not guard.is_spike(9.9) and guard.is_spike(10.5)
    guard.recent.pop()
    assert not guard.is_spike(1e9)  # fewer than spike_window steps seen: nothing is a spike yet


def test_a_nan_loss_is_left_to_run_guards_and_joins_no_median():
    guard = DivergenceGuard(loss_spike=10.0, spike_window=2)
    guard._loss = float("nan")
    guard.on_before_optimizer_step(None, None, torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    assert list(guard.recent) == [] and guard.spike_skips == 0


def test_non_finite_logits_are_refused_before_sampling():
    """NaN or +inf logits, or a row with nothing finite, raise before multinomial (which on CUDA would be a
    device-side assert); -inf alone (a masked token) is fine. Through sampling_guard it is Diverged."""
    from wavalign.policy.finite_logits import NonFiniteLogits, check_finite_logits

    inf = float("inf")
    check_finite_logits(torch.tensor([[0.0, -inf, 1.0], [2.0, 0.5, -inf]]))
    for bad in ([[0.0, float("nan"), 1.0]], [[0.0, inf, 1.0]], [[0.0, 1.0, 2.0], [-inf, -inf, -inf]]):
        with pytest.raises(NonFiniteLogits):
            check_finite_logits(torch.tensor(bad))
    with pytest.raises(Diverged, match="at step 3"), sampling_guard(3):
        check_finite_logits(torch.tensor([[float("nan")]]))
