"""The embedded world's configs train end to end on a small world: SFT warm start, then RL from its checkpoint, for
both architectures. Run from a scratch directory so the relative .cache/ paths of the configs land in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import scalars

from wavalign.cli import main

SMALL_WORLD = ["--world.n_train=16", "--world.n_val=4", "--world.n_test=4", "--world.num_codes=256"]
QUICK = [
    "--trainer.max_steps=2",
    "--trainer.log_every_n_steps=1",
    "--trainer.limit_val_batches=0",
    "--trainer.enable_progress_bar=false",
]


def warm_start(arch: str = "tiny") -> None:
    """The architecture's SFT warm start, 2 steps on the small world (writes .cache/checkpoints/<arch>_sft/)."""
    main(["fit", "--config", f"configs/{arch}_sft.yaml", *SMALL_WORLD, *QUICK, "--data.init_args.batch_size=4"])


@pytest.fixture
def scratch(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "configs").symlink_to(root / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("arch", ["tiny", "tiny_parallel"])
def test_warm_start_then_rl_two_steps_each(scratch: Path, arch: str) -> None:
    warm_start(arch)
    checkpoint = scratch / ".cache" / "checkpoints" / f"{arch}_sft" / "last.ckpt"
    assert checkpoint.is_file()

    # The RL config finds the warm start on disk (no second SFT run) and evaluates it before its first update.
    cli = main(
        [
            "fit",
            "--config",
            f"configs/{arch}.yaml",
            *SMALL_WORLD,
            *QUICK,
            "--model.sampling.max_new_tokens=48",
            "--model.eval_sampling.max_new_tokens=48",
        ]
    )
    assert cli.trainer.global_step == 2
    logs = scalars(scratch / "runs" / arch / "version_0")
    judge_parts = ("judge/correct",) if arch == "tiny" else ("judge/semantic", "judge/acoustic")
    for tag in ("gate/lambda", "reward/mean", "loss/po", "loss/sft", *judge_parts, "eval/iq"):
        assert tag in logs, tag
    assert [step for step, _ in logs["eval/iq"]] == [0]


def test_split_judge_overlay_rewards_with_the_acoustic_judges(scratch: Path) -> None:
    """configs/ablations/world_split_judge.yaml swaps the main job's semantic reward for the paper's split judge."""
    warm_start()
    cli = main(
        [
            "fit",
            "--config",
            "configs/tiny.yaml",
            "--config",
            "configs/ablations/world_split_judge.yaml",
            *SMALL_WORLD,
            *QUICK,
            "--model.sampling.max_new_tokens=48",
            "--model.eval_sampling.max_new_tokens=48",
            "--trainer.callbacks=[]",
        ]
    )
    assert cli.trainer.global_step == 2
    logs = scalars(scratch / "runs" / "tiny" / "version_0")
    for tag in ("judge/semantic", "judge/acoustic"):
        assert tag in logs, tag


def test_world_diagnose_reads_a_warm_start_checkpoint(scratch: Path, capsys: pytest.CaptureFixture) -> None:
    from wavalign.world.__main__ import main as world_main

    warm_start()
    capsys.readouterr()
    checkpoint = scratch / ".cache" / "checkpoints" / "tiny_sft" / "last.ckpt"
    assert (
        world_main(
            [
                "diagnose",
                "--checkpoint",
                str(checkpoint),
                "--samples",
                "2",
                *SMALL_WORLD,
                "--model.eval_sampling.max_new_tokens=48",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    table = out[next(i for i, line in enumerate(out) if line.startswith("family")) :]
    assert table[0].split()[:4] == ["family", "n", "accuracy", "restated"]
    assert table[-1].split()[:2] == ["all", "8"]  # 4 validation items x 2 samples
