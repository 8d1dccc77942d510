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
    ckpt = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"every_n_train_steps": 5, "save_last": True}}  # fmt: skip
    overlay.write_text(yaml.safe_dump({"trainer": {"callbacks": [ckpt, *callbacks]}}))
    cmd = [
        sys.executable, "-m", "wavalign", "fit", "--config", "configs/debug_interleaved.yaml", "--config", str(overlay),
        f"--trainer.max_steps={STEPS}", "--trainer.val_check_interval=5", "--trainer.enable_progress_bar=false",
        "--model.ppo_epochs=2", "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.logger.init_args.name", "run", *extra,
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
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


def assert_continues_exactly(got: dict[str, dict[int, float]], expected: dict[str, dict[int, float]], first: int) -> None:
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
    interrupt = tmp_path / "runs" / "run" / "version_0" / "checkpoints" / "on_exception.ckpt"
    assert interrupt.is_file(), err[-3000:]
    import torch

    step = torch.load(interrupt, map_location="cpu", weights_only=True)["global_step"]
    assert 5 < step < STEPS
    resumed = fit(tmp_path, "resume", ["--ckpt_path", "last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "on_exception.ckpt" in resumed.stdout
    assert_continues_exactly(logged(tmp_path / "runs" / "run" / "version_1"), uninterrupted, first=step)
