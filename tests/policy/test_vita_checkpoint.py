"""configs/vita_audio.yaml on a tiny random checkpoint written to disk with VITA-Audio's layout and its remote-code
quirks (vita_fixtures.py: GLM-4-Voice's 16384 <|audio_N|> codes, Qwen's chat markers, MCTP heads, an eval-mode
forward that needs generation state, the old num_logits_to_keep keyword). Only the paths (and, on this CPU machine,
the trainer's device and precision) are overridden: rollouts, the frozen reference's KL, the SFT anchor and
validation all run through the remote code."""

from __future__ import annotations

from conftest import scalars
from vita_fixtures import write_quirky_vita_checkpoint

from wavalign.cli import main


def test_vita_audio_config_trains_on_a_local_checkpoint(tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    ckpt = write_quirky_vita_checkpoint(tmp_path / "VITA-Audio-tiny")
    runs = tmp_path / "runs"
    main(
        [
            "fit",
            "--config",
            "configs/vita_audio.yaml",
            # the three USER lines
            f"--model.policy.init_args.source.init_args.path={ckpt}",
            "--data.init_args.train_file=configs/data/debug_train.jsonl",
            "--data.init_args.val_file=configs/data/debug_val.jsonl",
            # this machine: CPU, float32, a short run
            "--model.policy.init_args.source.init_args.dtype=float32",
            "--trainer.accelerator=cpu",
            "--trainer.precision=32-true",
            "--trainer.max_steps=2",
            "--trainer.val_check_interval=2",
            "--trainer.limit_val_batches=1",
            "--model.sampling.max_new_tokens=24",
            "--trainer.enable_progress_bar=false",
            f"--trainer.logger.init_args.save_dir={runs}",
            "--trainer.logger.init_args.version=0",
        ]
    )
    logs = scalars(runs)
    assert {
        "loss/po",
        "loss/sft",
        "loss/kl",
        "gate/lambda",
        "reward/mean",
        "rollout/len_speech",
        "val/loss_sft",
    } <= set(logs)
    assert len(logs["loss/total"]) == 2
    assert abs(logs["loss/kl"][0][1]) < 1e-6  # first step: the frozen reference is the policy, so KL is 0
    assert list(runs.rglob("*.ckpt")), "no checkpoint written"
