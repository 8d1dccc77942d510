"""Each hybrid rule is one YAML line away: its overlay trains the debug config and the embedded world's RL stage a
few steps end to end, and a rule that keeps state saves it in the checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import QUICK_FIT, scalars

from wavalign.cli import main

RULES = {
    "hpt": "HPTGate",
    "chord_mu": "CHORDGate",
    "chord_phi": "CHORDGate",
    "srft": "SRFTGate",
    "luffy": "LUFFYGate",
    "relift": "ReLIFTGate",
}
EXTRA = {
    "relift": ["--gate.rule.init_args.sft_batch_size=1", "--gate.rule.init_args.success_threshold=6.0"]
}  # SFT at once


@pytest.mark.parametrize("ablation", sorted(RULES))
def test_the_debug_config_trains_with_each_rule(root: Path, tmp_path: Path, monkeypatch, ablation: str) -> None:
    monkeypatch.chdir(root)
    cli = main(
        [
            "fit",
            "--config",
            "configs/debug_interleaved.yaml",
            "--config",
            f"configs/ablations/{ablation}.yaml",
            *QUICK_FIT,
            *EXTRA.get(ablation, []),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.logger.init_args.name",
            "r",
        ]
    )
    assert cli.trainer.global_step == 2
    assert type(cli.model.gate.rule).__name__ == RULES[ablation]
    logs = scalars(tmp_path / "r")
    assert all(torch.isfinite(torch.tensor([v for _, v in logs["loss/total"]])))
    assert {"policy/entropy_text", "policy/entropy_speech"} <= set(logs)  # the modality extras reach the logger
    cli.trainer.save_checkpoint(tmp_path / "last.ckpt")
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=False)
    state = next(v for k, v in ckpt["callbacks"].items() if k.startswith("GateCallback"))
    assert state["rule"] == RULES[ablation]
    if RULES[ablation] == "CHORDGate":
        assert state["rule_state"] == {"step": 2}
    if RULES[ablation] == "ReLIFTGate":  # every prompt failed (threshold 6): each step buffered 2, trained SFT on 1
        assert len(state["rule_state"]["buffer"]) == 2 and all(v > 0 for _, v in logs["loss/sft"])


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch folder for the world tests, so the small world is built once, not once per rule."""
    scratch = tmp_path_factory.mktemp("world")
    (scratch / "configs").symlink_to(Path(__file__).resolve().parents[2] / "configs")
    return scratch


@pytest.mark.parametrize("ablation", sorted(RULES))
def test_the_world_rl_stage_trains_with_each_rule(world_dir: Path, monkeypatch, ablation: str) -> None:
    """configs/tiny.yaml from a fresh policy (no warm start: the wiring, not the result, is under test)."""
    monkeypatch.chdir(world_dir)
    cli = main(
        [
            "fit",
            "--config",
            "configs/tiny.yaml",
            "--config",
            f"configs/ablations/{ablation}.yaml",
            *QUICK_FIT,
            *EXTRA.get(ablation, []),
            "--world.n_train=16",
            "--world.n_val=4",
            "--world.n_test=4",
            "--world.num_codes=256",
            "--model.init_checkpoint=null",
            "--model.group_size=2",
            "--data.init_args.batch_size=2",
            "--trainer.logger.init_args.name",
            ablation,
            "--trainer.max_steps=1",
        ]
    )
    assert cli.trainer.global_step == 1
    assert type(cli.model.gate.rule).__name__ == RULES[ablation]
