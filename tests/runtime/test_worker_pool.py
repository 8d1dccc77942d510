"""wavalign.runtime.worker_pool: workers die on terminate() even when the parent has a Python SIGTERM handler."""

import os
import signal
import time

from wavalign.runtime.worker_pool import fork_pool


def _pid_and_handler(_: int) -> tuple[int, object]:
    return os.getpid(), signal.getsignal(signal.SIGTERM)


def test_workers_reset_an_inherited_sigterm_handler_and_terminate_at_once():
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a parent handler that ignores SIGTERM
    try:
        pool = fork_pool(2)
        seen = pool.map(_pid_and_handler, range(4))
        assert {handler for _, handler in seen} == {signal.SIG_DFL}
        start = time.monotonic()
        pool.terminate()
        pool.join()
        assert time.monotonic() - start < 10
        for pid, _ in seen:  # each worker is gone
            try:
                os.kill(pid, 0)
                alive = True
            except ProcessLookupError:
                alive = False
            assert not alive, pid
    finally:
        signal.signal(signal.SIGTERM, previous)
