"""Silence two messages every run printed that tell a user nothing about the run, and nothing else.

- Lightning's "💡 Tip: ... litlogger / litmodels" lines: advertisements for Lightning's cloud services, logged at
  INFO by lightning.pytorch.utilities.rank_zero whenever a run uses another logger (or the default checkpointing).
- torch's FutureWarning "`isinstance(treespec, LeafSpec)` is deprecated", raised inside Lightning's own
  lightning/pytorch/utilities/_pytree.py (Lightning's code, to be fixed there; nothing a user of this package can do).

Both are matched by their exact text and origin, so every other message of Lightning and torch (warnings a user must
see, the GPU/TPU lines, `Trainer.fit stopped`) still prints. Installed once by wavalign.cli.main.
"""

from __future__ import annotations

import logging
import warnings

RANK_ZERO_LOGGER = "lightning.pytorch.utilities.rank_zero"  # where Lightning's rank_zero_info logs
CLOUD_TIPS = (
    "💡 Tip: For seamless cloud logging and experiment tracking,",
    "💡 Tip: For seamless cloud uploads and versioning,",
)
PYTREE_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"


class _DropCloudTips(logging.Filter):
    """Drops the records that start with one of CLOUD_TIPS."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(CLOUD_TIPS)


def silence_known_noise() -> None:
    """Install both filters (idempotent: a second call adds nothing)."""
    log = logging.getLogger(RANK_ZERO_LOGGER)
    if not any(isinstance(f, _DropCloudTips) for f in log.filters):
        log.addFilter(_DropCloudTips())
    warnings.filterwarnings(
        "ignore", message=PYTREE_DEPRECATION, category=FutureWarning, module=r"lightning\.pytorch\.utilities\._pytree"
    )
