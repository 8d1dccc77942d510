"""Forked worker pools whose workers die on `Pool.terminate()`, whatever the parent's signal handlers.

A fork copies the parent's Python-level SIGTERM handler (Lightning's signal connector, a CLI's own); with one, a
worker that `terminate()` signals only sets a flag and dies when it next runs Python code, so a worker waiting in C
keeps `Pool.__exit__` waiting for ever (seen as a CI hang while the world was encoded). Workers reset SIGTERM to
the default: the kernel ends them at once, as a pool expects.

The reset runs in the worker's initializer, after the fork; a SIGTERM that arrived between the two used to meet
the inherited handler, be swallowed, and leave the worker blocked on the queue lock that `terminate()` holds
(a CI hang on a loaded machine). So SIGTERM is blocked in the forking thread while the pool starts: a worker
inherits the block, resets the handler, then unblocks, and a pending SIGTERM ends it there.
"""

from __future__ import annotations

import multiprocessing
import signal
from multiprocessing.pool import Pool

_TERM = {signal.SIGTERM}


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _TERM)


def fork_pool(workers: int) -> Pool:
    """A fork-context pool of `workers` processes that `terminate()` ends at once, even right after the start.

    The parent's SIGTERM is deferred (not lost) while the workers are forked. The pool's helper threads are started
    then too and keep SIGTERM blocked, so the signal always reaches the main thread's handler.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _TERM)
    try:
        return multiprocessing.get_context("fork").Pool(workers, initializer=_default_sigterm)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
