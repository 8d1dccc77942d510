"""`wavalign --help` lists every command the package offers, and each listed tool runs under that name.

"Every entry point" is found, not listed by hand: each module of src/wavalign with a `__main__` guard or a
__main__.py, each subcommand of the Trainer CLI (LightningCLI.subcommands()) and each subcommand of the world tool
(its argparse choices, read from its own --help)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from wavalign.cli import WavAlignCLI, main
from wavalign.commands import COMMANDS, INTERNAL_ENTRY_POINTS, LIGHTNING, find, overview

SRC = Path(__file__).resolve().parent.parent / "src"


def entry_modules() -> set[str]:
    found = set()
    for path in (SRC / "wavalign").rglob("*.py"):
        if path.name == "__main__.py" or re.search(r'^if __name__ == "__main__":', path.read_text(), re.M):
            found.add(".".join(path.relative_to(SRC).with_suffix("").parts))
    return found - {"wavalign.__main__"}  # `python -m wavalign` is the dispatcher itself


def listed(capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_entry_point_with_one_line(capsys):
    text = listed(capsys)
    assert text == overview() + "\n"
    names = [re.split(r"\s{2,}", line.strip())[0] for line in text.splitlines() if line.startswith("  ")]
    assert names == [c.name for c in COMMANDS] and len(set(names)) == len(names)
    targets = {c.target for c in COMMANDS}
    assert entry_modules() - set(INTERNAL_ENTRY_POINTS) <= targets, entry_modules() - targets
    assert set(INTERNAL_ENTRY_POINTS) <= entry_modules()  # no stale exemption
    assert set(WavAlignCLI.subcommands()) == {c.name for c in COMMANDS if c.target == LIGHTNING}
    world_help = subprocess.run(
        [sys.executable, "-m", "wavalign.world", "--help"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    choices = re.search(r"\{([a-z,-]+)\}", world_help).group(1).split(",")
    assert sorted(choices) == sorted(c.name.split()[1] for c in COMMANDS if c.name.startswith("world "))


def test_no_command_prints_the_list_and_fails(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and "world diagnose" in capsys.readouterr().err


def test_tools_run_under_their_listed_names(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["world", "info"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert re.match(r"questions: \d+ \(train \d+, val \d+, test \d+, seed 0\)\nvocabulary: \d+ words\n$", out), out
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(SystemExit) as e:
        main(["check-data", str(bad)])
    assert e.value.code == 1 and "bad.jsonl" in capsys.readouterr().out
    for name in ("listening-page", "export-benchmark", "ablate", "world prepare", "listening build", "listening judge"):
        with pytest.raises(SystemExit) as e:  # argparse's own --help: the tool's options, exit 0
            main([*name.split(), "--help"])
        assert e.value.code == 0 and "usage:" in capsys.readouterr().out, name


def test_find_prefers_the_longest_name_and_leaves_trainer_commands():
    assert find(["world", "diagnose", "--checkpoint", "x"]).forward == ("diagnose",)
    assert find(["world", "--help"]).target == "wavalign.world.__main__"
    assert find(["listening", "report", "S"]).forward == ("report",)
    assert find(["listening", "--help"]).target == "wavalign.listening.__main__"
    assert find(["fit", "--config", "c.yaml"]) is None and find(["nonsense"]) is None
