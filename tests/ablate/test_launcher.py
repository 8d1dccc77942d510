"""wavalign.ablate.launcher: a run forked from the preloaded server runs `wavalign` as `python -m wavalign` would,
in the caller's working directory of the moment (the bit-for-bit comparison with a fresh interpreter is in
test_ablate.py's quick ablation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wavalign.ablate import launcher
from wavalign.ablate.runner import run_and_record


def test_a_forked_run_reads_its_configs_from_the_callers_directory_of_the_moment(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the server may start here (or has started elsewhere, in an earlier test)
    first = launcher.start(run_and_record, ["--help"], tmp_path / "h" / "seed0", {"row": "h"}, threads=1)
    assert first.wait() == 1  # `--help` trains nothing: the runner refuses to call it finished
    monkeypatch.chdir(root)
    where = tmp_path / "runs" / "p" / "seed0"
    proc = launcher.start(
        run_and_record, ["fit", "--config", "configs/tiny.yaml", "--print_config"], where, {"row": "p"}, threads=1
    )
    assert proc.wait() == 1
    log = Path(f"{where}.log").read_text()
    assert "class_path: wavalign.policy.interleaved.InterleavedPolicy" in log  # configs/tiny.yaml, found from root
    assert "stopped at step 0" in log and not (where / "result.json").exists()


def test_the_exit_status_of_a_run_killed_by_a_signal_reads_as_a_shells() -> None:
    class Ended:
        exitcode = -15

    assert launcher.RunProcess(Ended()).returncode == 143  # type: ignore[arg-type]
    Ended.exitcode = 0
    assert launcher.RunProcess(Ended()).poll() == 0  # type: ignore[arg-type]


def test_fit_in_process_runs_the_command_line_and_returns_its_exit_status(capsys: pytest.CaptureFixture) -> None:
    import sys

    argv = list(sys.argv)
    assert launcher.fit_in_process(["--help"]) == 0
    assert "fit" in capsys.readouterr().out  # the CLI's help, printed by this process
    assert launcher.fit_in_process(["no-such-subcommand"]) != 0
    assert sys.argv == argv


def test_a_message_the_command_exits_with_reaches_the_runs_log(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    def stop(*_args, **_kwargs):
        raise SystemExit("the world folder is missing")

    monkeypatch.setattr(runpy, "run_module", stop)
    assert launcher.fit_in_process(["fit"]) == 1
    assert "the world folder is missing" in capsys.readouterr().err
