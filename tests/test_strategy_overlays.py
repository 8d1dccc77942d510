"""configs/strategies/*.yaml: each overlay is one `--config` away from the 7B model configs and LightningCLI
validates every key of it against the strategy class it names. DDP and FSDP also train for real in
tests/test_distributed.py; DeepSpeed is not installed here (and needs CUDA), so for it this parse is all that runs."""

from __future__ import annotations

import pytest

from wavalign.cli import WavAlignCLI
from wavalign.data.datamodule import WavAlignDataModule
from wavalign.module import WavAlignModule

OVERLAYS = {
    "ddp": "lightning.pytorch.strategies.DDPStrategy",
    "fsdp": "wavalign.runtime.sharding.DataParallelFSDP",
    "deepspeed_zero3": "lightning.pytorch.strategies.DeepSpeedStrategy",
}


class ParseOnly(WavAlignCLI):
    """The CLI up to a validated config: no world preparation, nothing instantiated (no weights to load here)."""

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


def parse(*configs: str):
    args = [a for c in configs for a in ("--config", c)]
    return ParseOnly(WavAlignModule, WavAlignDataModule, subclass_mode_data=True, run=False, args=args).config


@pytest.mark.parametrize("model", ["configs/kimi_audio.yaml", "configs/vita_audio.yaml"])
@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_each_overlay_is_one_line_away_from_the_7b_configs(root, monkeypatch, model, overlay):
    monkeypatch.chdir(root)
    trainer = parse(model, f"configs/strategies/{overlay}.yaml").trainer
    assert trainer.strategy.class_path == OVERLAYS[overlay]
    assert trainer.use_distributed_sampler is False  # the train sampler shards the prompts itself
    assert trainer.precision == "bf16-true"  # the model config's settings stay in force under the overlay
    if overlay == "deepspeed_zero3":
        assert trainer.strategy.init_args.stage == 3
    if overlay == "fsdp":  # sized from the devices at start-up: nothing in the overlay to keep in step with them
        assert "data_parallel_size" not in (trainer.strategy.init_args or {})


def test_a_misspelt_strategy_key_is_refused(root, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(root)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (root / "configs/strategies/deepspeed_zero3.yaml").read_text().replace("offload_optimizer", "offload_optimiser")
    )
    with pytest.raises(SystemExit):
        parse("configs/kimi_audio.yaml", str(bad))
    assert "offload_optimiser" in capsys.readouterr().err


def test_the_cli_turns_lightnings_sampler_injection_off_by_default(root, monkeypatch):
    monkeypatch.chdir(root)
    assert parse("configs/debug_interleaved.yaml").trainer.use_distributed_sampler is False
