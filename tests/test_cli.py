"""The CLI end to end on the debug config: real TensorBoard events, real checkpoints, resume with the gate's state."""

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import scalars

from wavalign.cli import main

CONFIG = "configs/debug_interleaved.yaml"


def run(args: list[str], tmp_path: Path, name: str):
    base = [
        "--config",
        CONFIG,
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--trainer.logger.init_args.name",
        name,
        "--trainer.logger.init_args.version",
        "0",
        "--trainer.enable_progress_bar",
        "false",
    ]
    return main(args[:1] + base + args[1:])


@pytest.fixture(autouse=True)
def at_root(root, monkeypatch):
    monkeypatch.chdir(root)


def test_fit_writes_events_and_resume_restores_gate(tmp_path):
    run(["fit", "--trainer.max_steps=2", "--trainer.val_check_interval=2"], tmp_path, "a")
    logs = scalars(tmp_path / "runs" / "a")
    for tag in (
        "gate/lambda",
        "gate/lambda_raw",
        "reward/mean",
        "reward/std",
        "loss/po",
        "loss/sft",
        "loss/total",
        "rollout/frac_zero_std",
        "rollout/len_text",
        "rollout/len_speech",
        "val/reward",
    ):
        assert tag in logs, tag
    assert len(logs["gate/lambda"]) == 2
    ckpts = glob.glob(str(tmp_path / "runs" / "a" / "**" / "*.ckpt"), recursive=True)
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], weights_only=False)
    gate_state = next(v for k, v in state["callbacks"].items() if k.startswith("GateCallback"))
    lam2 = logs["gate/lambda"][-1][1]
    assert gate_state["rule_state"]["lam_prev"] == pytest.approx(lam2, abs=1e-6)

    run(["fit", "--trainer.max_steps=3", "--ckpt_path", ckpts[0]], tmp_path, "b")
    resumed = scalars(tmp_path / "runs" / "b")
    ((_, lam3),) = resumed["gate/lambda"]
    ((_, raw3),) = resumed["gate/lambda_raw"]
    assert lam3 == pytest.approx(min(0.8, 0.1 * raw3 + 0.9 * gate_state["rule_state"]["lam_prev"]), abs=1e-5)


def test_a_run_prints_no_cloud_tip_or_pytree_deprecation(tmp_path):
    """wavalign.runtime.quiet drops Lightning's litlogger tip and the LeafSpec FutureWarning raised inside Lightning; in a
    fresh process, as a user runs it, and without hiding Lightning's other lines."""
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wavalign",
            "fit",
            "--config",
            CONFIG,
            "--trainer.max_steps=1",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "litlogger" not in out and "Tip:" not in out, out
    assert "LeafSpec" not in out and "FutureWarning" not in out, out
    assert "`Trainer.fit` stopped" in out  # Lightning's own messages still print


def print_config(capsys, *configs: str) -> dict:
    args = ["fit"] + [a for c in configs for a in ("--config", c)] + ["--print_config"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0, configs
    return yaml.safe_load(capsys.readouterr().out)


def test_print_config_resolves_every_config(capsys):
    for cfg in sorted(glob.glob("configs/*.yaml")):
        printed = print_config(capsys, cfg)
        assert printed["gate"]["rule"]["class_path"].startswith("wavalign.gates."), cfg


@pytest.mark.parametrize(
    "ablation, rule, po_tokens",
    [
        ("sft_only", "SFTOnly", "text"),
        ("full_token", "RLOnly", "all"),
        ("text_fixed_0.5", "FixedGate", "text"),
        ("wavalign", "DynamicGate", "text"),
        ("wavalign_no_ema", "DynamicGate", "text"),
    ],
)
def test_ablations_are_one_config_away(capsys, ablation, rule, po_tokens):
    printed = print_config(capsys, CONFIG, f"configs/ablations/{ablation}.yaml")
    assert printed["gate"]["rule"]["class_path"] == f"wavalign.gates.{rule}"
    assert printed["model"]["po_tokens"] == po_tokens
    if ablation == "wavalign_no_ema":
        assert printed["gate"]["rule"]["init_args"]["alpha"] == 0.0
    if ablation == "text_fixed_0.5":
        assert printed["gate"]["rule"]["init_args"]["lam"] == 0.5


def test_validate_prints_the_benchmark_metrics(tmp_path, capsys):
    cli = run(["validate"], tmp_path, "v")
    assert "val/reward" in cli.trainer.callback_metrics
    printed = capsys.readouterr().out
    for name in ("eval/iq", "eval/eq", "eval/wer"):
        assert name in printed and name in cli.trainer.callback_metrics, name


def test_fit_with_lora_and_kl_reference(tmp_path):
    cli = run(
        [
            "fit",
            "--trainer.max_steps=2",
            "--trainer.limit_val_batches=0",
            "--model.beta=0.05",
            "--model.policy.init_args.lora.r=4",
            "--model.policy.init_args.lora.target_modules=[q_proj,v_proj]",
        ],
        tmp_path,
        "lora",
    )
    policy = cli.model.policy
    assert policy.uses_lora and policy.has_reference
    assert "loss/kl" in scalars(tmp_path / "runs" / "lora")


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_every_subcommand_runs_on_the_debug_configs_as_written(subcommand, tmp_path):
    """`wavalign --help` lists fit, validate, test and predict: none fails on a config as shipped (fit: above)."""
    for config in ("configs/debug_interleaved.yaml", "configs/debug_parallel.yaml"):
        extra = (
            [f"--listen.output_dir={tmp_path / 'listen'}"] if subcommand == "predict" else ["--trainer.logger=false"]
        )
        main([subcommand, "--config", config, "--trainer.enable_progress_bar=false", *extra])
        (Path.cwd() / "config.yaml").unlink(
            missing_ok=True
        )  # Lightning saves it in the working folder without a logger
