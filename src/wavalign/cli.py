"""`python -m wavalign fit|validate|test --config configs/X.yaml`: LightningCLI with the gate as a top-level key."""

from __future__ import annotations

import os

from lightning.pytorch.cli import LightningCLI

from wavalign.callbacks.gating import GateCallback
from wavalign.data.datamodule import WavAlignDataModule
from wavalign.module import WavAlignModule


class WavAlignCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The gate is part of the method, not an optional extra: `gate.rule` in YAML picks the rule.
        parser.add_lightning_class_args(GateCallback, "gate")
        parser.link_arguments("model.ppo_epochs", "data.init_args.repeat_batches")


def main(args: list[str] | None = None) -> WavAlignCLI:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return WavAlignCLI(
        WavAlignModule,
        WavAlignDataModule,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
    )
