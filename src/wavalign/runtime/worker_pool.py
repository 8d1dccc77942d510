"""Forked worker pools whose workers die on `Pool.terminate()`, whatever the parent's signal handlers.

A fork copies the parent's Python-level SIGTERM handler (Lightning's signal connector, a CLI's own); with one, a
worker that `terminate()` signals only sets a flag and dies when it next runs Python code, so a worker waiting in C
keeps `Pool.__exit__` waiting for ever (seen as a CI hang while the world was encoded). Workers reset SIGTERM to
the default: the kernel ends them at once, as a pool expects.
"""

from __future__ import annotations

import multiprocessing
import signal
from multiprocessing.pool import Pool


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def fork_pool(workers: int) -> Pool:
    """A fork-context pool of `workers` processes that `terminate()` ends at once."""
    return multiprocessing.get_context("fork").Pool(workers, initializer=_default_sigterm)
