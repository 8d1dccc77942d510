"""Resume only the run the command describes: every checkpoint records the run's resolved config, and `fit
--ckpt_path ...` refuses a checkpoint whose config differs from the command's in anything but the keys meant to
change, naming the differing keys.

Why: `--ckpt_path last` finds the newest checkpoint under the logger's name, whatever command wrote it. Resuming a
finished run with other hyperparameters (`--model.beta 0.05 --seed_everything 1`) used to print "done", exit 0 and
write a config.yaml claiming settings no step was trained with. Keys meant to change between a run and its resume:
the step limit, the device count (the per-process state checks it where it matters), logging, progress display,
evaluation frequency and batch size, the files `fit` does not train or validate on, the guards, the run summary and listening page, and the warm start (its weights are replaced by
the checkpoint's). `trainer.callbacks` changes are allowed with a warning (checkpoint intervals and benchmarks are
meant to change; a callback that alters training is the user's call). `--resume_changes KEY,KEY` accepts more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import lightning.pytorch as pl

CONFIG_KEY = "wavalign_config"  # where a checkpoint holds its run's flattened config
MEANT_TO_CHANGE = (
    "ckpt_path",
    "config",
    "resume_changes",
    "summary",
    "listen",
    "guards",
    "divergence",
    "warm_start_config",
    "model.init_checkpoint",
    "trainer.max_steps",
    "trainer.max_epochs",
    "trainer.max_time",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.logger",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.default_root_dir",
    "trainer.val_check_interval",
    "trainer.check_val_every_n_epoch",
    "trainer.limit_val_batches",
    "trainer.num_sanity_val_steps",
    "data.init_args.eval_batch_size",
    "data.init_args.check_audio",
    "data.init_args.test_file",
    "data.init_args.predict_file",
)
WARN_ONLY = ("trainer.callbacks",)


class ConfigMismatch(ValueError):
    """The checkpoint was written under other settings than the command's."""


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"model.beta": "0.01", ...}: nested mappings joined with dots, every leaf (lists too) as its JSON text."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flat_config(value, f"{name}."))
        else:
            out[name] = json.dumps(value, sort_keys=True, default=str)
    return out


def _under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def differing_keys(saved: Mapping[str, str], now: Mapping[str, str], accepted: Sequence[str] = ()) -> list[str]:
    """Keys whose values differ (or that only one side has), apart from MEANT_TO_CHANGE and `accepted` ones."""
    skip = (*MEANT_TO_CHANGE, *accepted)
    return sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and not _under(k, skip))


def read_saved_config(path: str | Path) -> dict[str, str] | None:
    """The config a checkpoint records, reading no weights (memory-mapped; a sharded checkpoint's folder: its meta.pt,
    where everything but the weights is); None for checkpoints from before, or a folder without meta.pt."""
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / "meta.pt"
        if not path.is_file():
            return None
    checkpoint = torch.load(str(path), map_location="cpu", mmap=True, weights_only=False)
    return checkpoint.get(CONFIG_KEY)


def check_resume(path: str | Path, now: Mapping[str, str], accepted: Sequence[str] = ()) -> list[str]:
    """Raise ConfigMismatch naming every differing key (old -> new) unless all are meant to change or accepted;
    returns warnings (WARN_ONLY keys that differ, or a checkpoint that records no config)."""
    saved = read_saved_config(path)
    if saved is None:
        return [f"{path} records no config (written by an older version): cannot check it matches this command"]
    differ = differing_keys(saved, now, accepted)
    hard = [k for k in differ if not _under(k, WARN_ONLY)]
    if hard:
        shown = "\n".join(f"  {k}: {saved.get(k, '(unset)')} -> {now.get(k, '(unset)')}" for k in hard[:30])
        raise ConfigMismatch(
            f"--ckpt_path: {path} was written by a run with other settings ({len(hard)} key(s)):\n{shown}\n"
            "Resuming would continue that run under settings it was not trained with. Run that run's own command "
            "with --ckpt_path last, start a new run (no --ckpt_path, or another --trainer.logger.init_args.name), "
            f"or accept the change: --resume_changes {','.join(hard)}"
        )
    return [f"{k} differs from the checkpoint's run; continuing (a resume may change it)" for k in differ]


class RunConfigRecord(pl.Callback):
    """Writes the run's flattened config into every checkpoint (CONFIG_KEY), for check_resume.

    Args:
        config: The run's config, flattened (flat_config).
    """

    def __init__(self, config: Mapping[str, str]) -> None:
        self.config = dict(config)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config
