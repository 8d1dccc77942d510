"""Exact resume: a real `fit` subprocess killed mid-run (SIGKILL: no clean-up; SIGTERM: a scheduler's notice) and
resumed with `--ckpt_path last` logs the same numbers, bit for bit, as the same run left alone: random states, data
position, the PPO rollout buffer, gate, optimiser and scheduler all come back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, scalars

TAGS = ("loss/total", "loss/po", "loss/sft", "gate/lambda", "reward/mean", "rollout/len_text")
STEPS = 12


def command(tmp_path: Path, name: str, extra: list[str], callbacks: list[dict]) -> tuple[list[str], dict[str, str]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    overlay = tmp_path / f"{name}.yaml"
    ckpt = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"every_n_train_steps": 5, "save_last": True},
    }
    overlay.write_text(yaml.safe_dump({"trainer": {"callbacks": [ckpt, *callbacks]}}))
    cmd = [
        sys.executable,
        "-m",
        "wavalign",
        "fit",
        "--config",
        "configs/debug_interleaved.yaml",
        "--config",
        str(overlay),
        f"--trainer.max_steps={STEPS}",
        "--trainer.val_check_interval=5",
        "--trainer.enable_progress_bar=false",
        "--model.ppo_epochs=2",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--trainer.logger.init_args.name",
        "run",
        *extra,
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    )
    return cmd, env


def fit(tmp_path: Path, name: str, extra: list[str] = [], callbacks: list[dict] = []) -> subprocess.CompletedProcess:
    cmd, env = command(tmp_path, name, extra, callbacks)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def logged(run_dir: Path) -> dict[str, dict[int, float]]:
    return {tag: dict(values) for tag, values in scalars(run_dir).items() if tag in TAGS}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, dict[int, float]]:
    tmp = tmp_path_factory.mktemp("whole")
    done = fit(tmp, "whole")
    assert done.returncode == 0, done.stderr[-3000:]
    return logged(tmp / "runs" / "run" / "version_0")


def assert_continues_exactly(
    got: dict[str, dict[int, float]], expected: dict[str, dict[int, float]], first: int
) -> None:
    assert sorted(got["loss/total"]) == list(range(first, STEPS))
    for tag in TAGS:  # reward and rollout figures are logged when rollouts are sampled: every second step here
        steps = sorted(got[tag])
        assert steps and steps[-1] == STEPS - 1 and steps[0] <= first + 1, (tag, steps)
        assert [got[tag][s] for s in steps] == [expected[tag][s] for s in steps], tag


def test_resume_after_sigkill_continues_exactly(tmp_path, uninterrupted):
    killed = fit(tmp_path, "crash", callbacks=[{"class_path": "resume_toys.KillAtStep", "init_args": {"step": 7}}])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (tmp_path / "runs" / "run" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    resumed = fit(tmp_path, "resume", ["--ckpt_path", "last"])  # logs to version_1; 'last' is found in version_0
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resume: continuing from" in resumed.stdout and "version_0" in resumed.stdout
    # from the step-5 checkpoint, which falls between the two PPO epochs of one rollout batch
    assert_continues_exactly(logged(tmp_path / "runs" / "run" / "version_1"), uninterrupted, first=5)


def test_sigterm_saves_a_checkpoint_that_resumes_exactly(tmp_path, uninterrupted):
    slow = [{"class_path": "resume_toys.SlowFromStep", "init_args": {"step": 6, "seconds": 1.0}}]
    cmd, env = command(tmp_path, "term", [], slow)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_ckpt = tmp_path / "runs" / "run" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not first_ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # inside the slowed steps, before the run ends
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert "run the same command with --ckpt_path last" in out, err[-3000:]
    assert proc.returncode == 143 and "stopped by SIGTERM: exit status 143" in err  # preempted, not finished
    interrupt = tmp_path / "runs" / "run" / "version_0" / "checkpoints" / "on_exception.ckpt"
    assert interrupt.is_file(), err[-3000:]
    import torch

    step = torch.load(interrupt, map_location="cpu", weights_only=True)["global_step"]
    assert 5 < step < STEPS
    resumed = fit(tmp_path, "resume", ["--ckpt_path", "last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "on_exception.ckpt" in resumed.stdout
    assert_continues_exactly(logged(tmp_path / "runs" / "run" / "version_1"), uninterrupted, first=step)


class _FailsAtStep(__import__("lightning").pytorch.LightningModule):
    """One linear layer that raises when training reaches `fail_at` (0: in setup, before any step)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        import torch

        self.fail_at, self.layer = fail_at, torch.nn.Linear(2, 1)

    def setup(self, stage: str) -> None:
        if self.fail_at == 0:
            raise RuntimeError("bad data")

    def train_dataloader(self):
        import torch

        return torch.utils.data.DataLoader(torch.ones(8, 2), batch_size=1)

    def training_step(self, batch, batch_idx):
        if self.global_step == self.fail_at:
            raise RuntimeError("died mid-run")
        return self.layer(batch).sum()

    def configure_optimizers(self):
        import torch

        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("fail_at", [0, 2])
def test_an_interrupt_checkpoint_is_written_only_once_a_step_has_trained(tmp_path, fail_at):
    import lightning.pytorch as pl

    from wavalign.runtime.resume import InterruptCheckpoint

    earlier = tmp_path / "on_exception.ckpt"
    earlier.write_bytes(b"an earlier crash's checkpoint")
    trainer = pl.Trainer(
        default_root_dir=tmp_path,
        max_steps=4,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[InterruptCheckpoint(tmp_path)],
    )
    with pytest.raises(RuntimeError, match="bad data" if fail_at == 0 else "died mid-run"):
        trainer.fit(_FailsAtStep(fail_at))
    if fail_at == 0:
        assert earlier.read_bytes() == b"an earlier crash's checkpoint"
    else:
        import torch

        assert torch.load(earlier, weights_only=False)["global_step"] == fail_at
