"""DropEmptyRun: a `fit` that fails before its first step leaves no version folder behind.

Lightning's logger makes `version_N/` (config.yaml, hparams.yaml, an event file) while the run starts; a run that
then stops on bad data or a refused resume left it there, empty, among the real runs: TensorBoard listed it and the
next run got the next number. The folder is removed only when it holds nothing of value: no checkpoint, no file
but those, and no logged value in the event files beyond the header and Lightning's hyperparameter records.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning.pytorch as pl

START_FILES = {"config.yaml", "hparams.yaml"}
BOOKKEEPING_TAGS = {"hp_metric", "_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}


def _logged_values(events: Path) -> bool:
    """Whether an event file holds any value beyond the file header and Lightning's hyperparameter records."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    for event in EventFileLoader(str(events)).Load():
        if any(v.tag not in BOOKKEEPING_TAGS for v in event.summary.value):
            return True
    return False


def holds_nothing(folder: Path) -> bool:
    """True when `folder` holds only start-up files: config.yaml, hparams.yaml, empty folders and event files
    without logged values."""
    if not folder.is_dir():
        return False
    for path in folder.rglob("*"):
        if path.is_dir():
            continue
        if path.name.startswith("events.out.tfevents."):
            if _logged_values(path):
                return False
        elif path.name not in START_FILES or path.parent != folder:
            return False
    return True


class DropEmptyRun(pl.Callback):
    """On an exception before the first training step, removes the logger's version folder if it holds nothing."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != "fit" or trainer.global_step > 0 or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            folder = logger.log_dir
            if folder is not None and holds_nothing(Path(folder)):
                logger.finalize(
                    "failed"
                )  # close the event file before its folder goes (Lightning's later call is a no-op)
                shutil.rmtree(folder, ignore_errors=True)
                try:
                    Path(folder).parent.rmdir()  # the logger's name folder too, when this run was all it held
                except OSError:
                    pass
