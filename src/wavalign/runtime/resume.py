"""Exact resume: a run killed at any checkpoint and resumed with `--ckpt_path last` continues as if never stopped.

Lightning restores weights, optimiser, scheduler, loop counters and callback states. What it leaves out, and a
sampling-based trainer needs, lives here: the random states (torch, CUDA, numpy, python) and the position in the
training data. Two rules make the random stream a function of training alone, so it can be saved and restored:
validation runs on a forked stream (Lightning skips a due validation on resume, so it must not advance the training
stream), and the train loader draws its worker seed from its own generator (DataLoader would take it from the global
stream at every epoch start).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint

from wavalign.runtime.distributed import decorrelate_rank_streams, load_per_rank, process_slot, save_per_rank


def rng_states() -> dict[str, Any]:
    """Every random state a training step may draw from. Written here rather than taken from Lightning, whose
    equivalents are private (fabric.utilities.seed._collect_rng_states)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {  # tensors and plain values only, so checkpoints load with torch.load(weights_only=True)
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeStateCallback(pl.Callback):
    """Counts the training batches the run has consumed and saves it with the random states in every checkpoint.

    On resume the data module is told where to continue (`resume_after(batches)`), and the random states are put
    back at the first training batch, after everything Lightning runs between restore and that batch (sanity
    checks, loader setup, start-of-training evaluations), so none of it shifts the stream.

    Under several processes each rank has its own stream (wavalign.runtime.distributed.decorrelate_rank_streams); a
    checkpoint holds every rank's random states and each rank takes its own back on resume (same process count).
    """

    def __init__(self) -> None:
        self.trained_batches = 0
        self._pending: dict[str, Any] | None = None
        self._outside_validation: dict[str, Any] | None = None
        self._trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer  # load_state_dict gets no trainer, and needs this process's rank
        if stage == "fit":
            decorrelate_rank_streams(trainer)

    # ---- the training data position ------------------------------------------------------------------------------
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.trained_batches += 1

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Runs before load_state_dict, hence the count is read from the checkpoint itself."""
        saved = checkpoint.get("callbacks", {}).get(self.state_key, {})
        batches = int(saved.get("trained_batches", 0))
        datamodule = getattr(trainer, "datamodule", None)
        if batches and datamodule is not None:
            if not hasattr(datamodule, "resume_after"):
                raise TypeError(
                    f"{type(datamodule).__name__} cannot continue mid-run at batch {batches}: give it a "
                    "resume_after(batches) method (see wavalign.data.datamodule.WavAlignDataModule)"
                )
            datamodule.resume_after(batches)

    # ---- random states -------------------------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._outside_validation = rng_states()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._outside_validation is not None:
            set_rng_states(self._outside_validation)
            self._outside_validation = None

    # ---- checkpoint ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The training stream's state: during validation, the one validation will hand back; right after a
        restore, the one still to be put back."""
        rng = self._outside_validation or self._pending or rng_states()
        return {"trained_batches": self.trained_batches, "rng": save_per_rank(self._trainer, rng)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.trained_batches = int(state_dict.get("trained_batches", 0))
        rank, world_size = process_slot(self._trainer)
        rng = state_dict.get("rng")
        self._pending = None if rng is None else load_per_rank(rng, rank, world_size, "random states")


# ---- where checkpoints are, for `--ckpt_path last` ----------------------------------------------------------------
INTERRUPT_NAME = "on_exception"


class UnsaveableState(RuntimeError):
    """Raised when the run's state must not be saved (diverged weights: wavalign.callbacks.divergence.Diverged):
    the interrupt checkpoint is skipped, so `--ckpt_path last` resumes the newest checkpoint written before."""


def weights_finite(pl_module: pl.LightningModule) -> bool:
    """Every trainable weight finite (the part this process holds, under sharding)."""
    for p in pl_module.parameters():
        if p.requires_grad:
            local = p.to_local() if hasattr(p, "to_local") else p
            if local.numel() and not bool(torch.isfinite(local.detach()).all()):
                return False
    return True


def checkpoint_dirs(trainer: pl.Trainer) -> list[Path]:
    """Every folder this run's checkpoint callbacks write to, and for logger-placed ones every earlier version's.

    Args:
        trainer: The run's Trainer.
    """
    dirs: list[Path] = []
    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "dirpath", None):
            dirs.append(Path(cb.dirpath))
        elif trainer.loggers and trainer.loggers[0].save_dir is not None:
            logger = trainer.loggers[0]
            dirs.extend(sorted(Path(logger.save_dir, str(logger.name)).glob("*/checkpoints")))
    return list(dict.fromkeys(dirs))


class InterruptCheckpoint(Checkpoint):
    """Saves `<dirpath>/on_exception.ckpt` when the run dies of an exception, Ctrl-C or a scheduler's SIGTERM
    (Lightning stops at the next batch boundary and calls on_exception), and says how to resume. A run that dies
    before its first step (bad data, a missing file) saves nothing: there is nothing to resume, and an earlier
    crash's checkpoint in the same folder must not be replaced by an untrained one.

    Written here rather than using Lightning's OnExceptionCheckpoint: with that one present, every fresh `fit`
    without a ckpt_path silently turns into `ckpt_path="last"` and warns that none exists.

    Args:
        dirpath: Folder the interrupt checkpoint is written to (the run's checkpoint folder, so that
            `--ckpt_path last` finds it).
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = str(dirpath)

    @property
    def path(self) -> Path:
        return Path(self.dirpath) / f"{INTERRUPT_NAME}.ckpt"

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking or trainer.global_step == 0:
            return
        usable = not isinstance(exception, UnsaveableState)
        if not trainer.strategy.reduce_boolean_decision(usable and weights_finite(pl_module), all=True):
            if trainer.is_global_zero:
                self.tell_unsaved(trainer, exception)
            return
        trainer.save_checkpoint(self.path)  # on every rank: saving is collective under sharded strategies
        if trainer.is_global_zero:
            print(
                f"interrupted at step {trainer.global_step} ({type(exception).__name__}): saved {self.path}; "
                "run the same command with --ckpt_path last to continue",
                flush=True,
            )

    def tell_unsaved(self, trainer: pl.Trainer, exception: BaseException) -> None:
        """Say that nothing was saved, and which checkpoint `--ckpt_path last` would resume instead."""
        last = find_last_checkpoint(trainer)
        after = (
            f"`--ckpt_path last` resumes {last}, written before (the same settings repeat the same steps)"
            if last is not None
            else "this run has no earlier checkpoint: start again"
        )
        print(
            f"stopped at step {trainer.global_step} ({type(exception).__name__}): the weights are not usable, so no "
            f"checkpoint of them was written; {after}",
            flush=True,
        )


def add_interrupt_checkpoint(trainer: pl.Trainer) -> None:
    """Beside the periodic checkpoints, one written on interruption, in the same folder. Only for runs that save
    checkpoints at all.

    Args:
        trainer: The run's Trainer; an InterruptCheckpoint is appended to its callbacks (once).
    """
    models = [cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)]
    if not models or any(isinstance(cb, InterruptCheckpoint) for cb in trainer.callbacks):
        return
    first = models[0]
    if first.dirpath:
        folder = Path(first.dirpath)
    elif trainer.loggers and trainer.loggers[0].log_dir is not None:
        folder = Path(trainer.loggers[0].log_dir) / "checkpoints"
    else:
        folder = Path(trainer.default_root_dir) / "checkpoints"
    trainer.callbacks.append(InterruptCheckpoint(folder))


def find_last_checkpoint(trainer: pl.Trainer) -> Path | None:
    """The newest `last*.ckpt` or interrupt checkpoint in the run's checkpoint folders (all logger versions: a
    resumed run logs to a new version, so Lightning's own 'last' lookup would miss the crashed run's files).

    Args:
        trainer: The run's Trainer, whose checkpoint callbacks and logger say where to look.
    """
    found = [
        p
        for d in checkpoint_dirs(trainer)
        if d.is_dir()
        for p in d.glob("*.ckpt")
        if p.stem.startswith("last") or p.stem == INTERRUPT_NAME
    ]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None
