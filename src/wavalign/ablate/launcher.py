"""Start each ablation run from a process that has already imported the training stack (a fork server).

A run used to start a fresh interpreter twice (`python -m wavalign.ablate.runner`, which runs `python -m wavalign
fit`): about 7 s a run before the fit's own clock started, most of it importing torch, Lightning, transformers and
the package; about 5 s a run, 2.6 min of a 9-seed ablation on 2 cores, is saved (docs/performance.md). Here a
multiprocessing fork server imports the stack once; each run is forked from it and runs `wavalign` in-process, the
way `python -m wavalign` would (runpy, the same argv), then writes its result as before.

The entry point is named by string, as the command line names it: the ablation package invokes the CLI as a program
and does not import it (tests/test_import_graph.py). The server has run no torch op when it forks, so no thread pool
is copied; each run sets its own thread count before the fit starts.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import runpy
import sys
from pathlib import Path
from typing import Any, Callable

# what `python -m wavalign fit` imports first, named as the command line names it; imported once by the server
PRELOAD = ["wavalign.cli"]
RunFunction = Callable[..., Any]


class RunProcess:
    """The part of subprocess.Popen's interface that the runner uses, over a forked run."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process

    @property
    def returncode(self) -> int | None:
        code = self.process.exitcode
        return None if code is None else (code if code >= 0 else 128 - code)  # killed by signal N: 128 + N

    def poll(self) -> int | None:
        return self.returncode

    def wait(self) -> int:
        self.process.join()
        return int(self.returncode)  # type: ignore[arg-type]

    def terminate(self) -> None:
        self.process.terminate()


def fit_in_process(args: list[str]) -> int:
    """`python -m wavalign ARGS` in this process; its exit status."""
    saved = sys.argv
    sys.argv = ["wavalign", *args]  # runpy sets argv[0] to the module's file, as `python -m` does
    try:
        runpy.run_module("wavalign", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if isinstance(e.code, int) or e.code is None:
            return e.code or 0
        print(e.code, file=sys.stderr, flush=True)  # what the interpreter prints for SystemExit("message")
        return 1
    finally:
        sys.argv = saved
    return 0


def _run(run: RunFunction, args: list[str], where: str, meta_json: str) -> None:
    """One ablation run in the forked process: `run` (the runner's run_and_record) with the fit in-process."""
    run(args, Path(where), json.loads(meta_json), fit=fit_in_process)


def _child(target: Callable[..., Any], call_args: tuple, log: str, threads: int, cwd: str, env: dict[str, str]) -> None:
    """In a forked process: the caller's working directory and environment as they are now (the server kept those
    of its start), output to `log`, `threads` threads, then `target(*call_args)`."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    target(*call_args)


def call(target: Callable[..., Any], call_args: tuple, log: Path, threads: int) -> RunProcess:
    """Fork `target(*call_args)` (a module-level function and picklable arguments: they travel by pickle) from the
    fork server (started, with PRELOAD imported, on the first call); its output goes to `log`."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    log.parent.mkdir(parents=True, exist_ok=True)
    child_args = (target, call_args, str(log), threads, os.getcwd(), dict(os.environ))
    process = ctx.Process(target=_child, args=child_args, daemon=False)
    process.start()
    return RunProcess(process)


def start(run: RunFunction, args: list[str], where: Path, meta: dict[str, Any], threads: int) -> RunProcess:
    """Fork one run of `run(args, where, meta, fit=...)`; its output goes to <where>.log."""
    return call(_run, (run, args, str(where), json.dumps(meta)), Path(f"{where}.log"), threads)
