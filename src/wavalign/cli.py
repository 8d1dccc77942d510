"""`python -m wavalign fit|validate|test --config configs/X.yaml`: LightningCLI with the gate as a top-level key.

Two optional top-level keys make one command do everything in the embedded world:
- `world`: prepare (or reuse, cached) the offline spoken-dialogue data before anything is built from it;
- `warm_start_config`: when `model.init_checkpoint` does not exist yet (or is older than the world it was trained on),
  run this config first to make it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lightning.pytorch.cli import LightningCLI

from wavalign.callbacks.gating import GateCallback
from wavalign.data.datamodule import WavAlignDataModule
from wavalign.module import WavAlignModule
from wavalign.warm_start import ensure_checkpoint


@dataclass
class WorldSettings:
    """Arguments of wavalign.world.prepare.prepare_world."""

    dir: str = ".cache/world"
    seed: int = 0
    n_train: int = 1500
    n_val: int = 150
    n_test: int = 150
    num_codes: int = 256
    frame_ms: float = 40.0
    teacher_wrong_answer: float = 0.0  # share of training questions demonstrated with a wrong answer (world/teacher.py)
    teacher_wrong_style: float = 0.0  # share of training demonstrations spoken in a wrong style
    n_heard: int = 0  # examples of the heard split: training questions recorded in other voices and rates


class WavAlignCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The gate is part of the method, not an optional extra: `gate.rule` in YAML picks the rule.
        parser.add_lightning_class_args(GateCallback, "gate")
        parser.link_arguments("model.ppo_epochs", "data.init_args.repeat_batches")
        parser.add_argument("--world", type=WorldSettings | None, default=None, help="prepare the embedded world first")
        parser.add_argument("--warm_start_config", type=str | None, default=None, help="config that makes model.init_checkpoint")

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if cfg.get("world") is not None:
            from wavalign.world.prepare import prepare_world
            from wavalign.world.extras import write_world_extras

            w = cfg.world
            prepare_world(w.dir, seed=w.seed, n_train=w.n_train, n_val=w.n_val, n_test=w.n_test,
                          num_codes=w.num_codes, frame_ms=w.frame_ms, teacher_wrong_answer=w.teacher_wrong_answer,
                          teacher_wrong_style=w.teacher_wrong_style, n_heard=w.n_heard)  # fmt: skip
            write_world_extras(w.dir)
        checkpoint = cfg.model.get("init_checkpoint")
        if cfg.get("warm_start_config") and checkpoint:
            stamp = os.path.join(cfg.world.dir, "manifest.json") if cfg.get("world") is not None else None
            ensure_checkpoint(checkpoint, cfg.warm_start_config, data_stamp=stamp)


def main(args: list[str] | None = None) -> WavAlignCLI:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return WavAlignCLI(
        WavAlignModule,
        WavAlignDataModule,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=args,
    )
