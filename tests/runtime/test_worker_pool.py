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


def test_a_worker_signalled_before_its_initializer_ran_still_dies():
    """The CI hang: a worker slow to start (a loaded machine) got terminate()'s SIGTERM while it still had the
    parent's ignoring handler. A fork hook that sleeps 0.5 s in each child makes that window certain."""
    import subprocess
    import sys

    code = (
        "import os, signal, time\n"
        "from wavalign.runtime.worker_pool import fork_pool\n"
        "os.register_at_fork(after_in_child=lambda: time.sleep(0.5))\n"
        "signal.signal(signal.SIGTERM, lambda *_: None)\n"
        "pool = fork_pool(2)\n"
        "pool.terminate(); pool.join()\n"
        "assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, []), 'parent mask not restored'\n"
        "print('joined')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "joined"


def test_pyarrow_starts_no_allocator_thread_under_wavalign():
    """Forked pools must not inherit a thread that may hold a lock (see wavalign/__init__.py): importing pyarrow
    after wavalign starts no jemalloc background thread."""
    import subprocess
    import sys

    code = (
        "import glob, wavalign, pyarrow as pa; pa.array(list(range(1000)));"
        "print(sorted(open(f + '/comm').read().strip() for f in glob.glob('/proc/self/task/*')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "JE_ARROW_MALLOC_CONF"}  # this process has it already
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert "jemalloc_bg_thd" not in out
