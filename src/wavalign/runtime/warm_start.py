"""Warm starts: load policy weights from a checkpoint, and make that checkpoint first when it is missing.

The embedded world's RL config starts from an SFT checkpoint; one command must do everything, so a missing
checkpoint is produced by running its own config (in a child process: a clean Trainer, its own logs).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn


def ensure_checkpoint(checkpoint: str | Path, config: str | Path, data_stamp: str | Path | None = None) -> Path:
    """Run `python -m wavalign fit --config <config>` if `checkpoint` does not exist yet, or is older than
    `data_stamp` (a file rewritten whenever the data it was trained on is rebuilt); return its path.

    Args:
        checkpoint: The checkpoint the run starts from (`model.init_checkpoint`).
        config: The config that writes that checkpoint (`warm_start_config`, e.g. configs/tiny_sft.yaml).
        data_stamp: A file rewritten whenever the training data is rebuilt (the world's manifest.json); a
            checkpoint older than it is trained again; None checks existence only.
    """
    checkpoint = Path(checkpoint)
    stamp = Path(data_stamp) if data_stamp is not None else None
    if checkpoint.is_file():
        if stamp is None or not stamp.is_file() or checkpoint.stat().st_mtime >= stamp.stat().st_mtime:
            print(f"warm start: using {checkpoint}", flush=True)
            return checkpoint
        print(
            f"warm start: {checkpoint} is older than {stamp}: the data was rebuilt since, so it is trained again",
            flush=True,
        )
    if not Path(config).is_file():
        raise FileNotFoundError(
            f"warm start: checkpoint {checkpoint} is missing or stale and its config {config} does not exist"
        )
    print(
        f"warm start: {checkpoint} is missing or stale; running `python -m wavalign fit --config {config}` "
        "(its progress bar and summary follow)",
        flush=True,
    )
    begun = time.monotonic()
    subprocess.run([sys.executable, "-m", "wavalign", "fit", "--config", str(config)], check=True)
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"warm start: {config} ran but did not write {checkpoint}; check its ModelCheckpoint dirpath"
        )
    print(f"warm start: done in {time.monotonic() - begun:.0f} s -> {checkpoint}", flush=True)
    return checkpoint


def load_policy_weights(module: nn.Module, checkpoint: str | Path, prefix: str = "policy.") -> None:
    """Copy the `prefix` weights of a Lightning checkpoint into `module`; every policy weight must be present."""
    try:  # tensors and plain values only: a checkpoint from elsewhere cannot run code while it loads
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{checkpoint} holds objects beyond tensors and plain values, so it is not loaded (weights_only): "
            f"{str(e).splitlines()[-1] if str(e) else e}"
        ) from None
    if "state_dict" not in state:
        raise ValueError(f"{checkpoint} is not a Lightning checkpoint (no 'state_dict')")
    weights = {k: v for k, v in state["state_dict"].items() if k.startswith(prefix)}
    own = {k for k in module.state_dict() if k.startswith(prefix)}
    missing, unexpected = own - weights.keys(), weights.keys() - own
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint} does not match this policy: {len(missing)} weights missing (e.g. {sorted(missing)[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]}); was it trained with the same policy config?"
        )
    module.load_state_dict(weights, strict=False)
