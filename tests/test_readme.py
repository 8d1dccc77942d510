"""The README as a user runs it: its test command is exactly what CI runs, its code runs, its commands exist, and it
stays a guide one reads in ten minutes (issue 18: about 15 KB at most)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from wavalign.commands import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def test_the_two_commands_and_ci():
    bash = [b.strip() for b in blocks("bash")]
    main_job, tests = bash[0], bash[1]
    assert main_job == "bash scripts/setup.sh && .venv/bin/python -m wavalign fit --config configs/tiny.yaml"
    assert tests == "bash scripts/setup.sh && .venv/bin/python -m pytest"
    ci = [
        line
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci == [tests]  # CI runs the README's test command, exactly


def test_short_enough_to_read():
    assert len(README.encode("utf-8")) <= 15 * 1024


def test_every_wavalign_command_it_names_exists():
    names = {c.name.split()[0] for c in COMMANDS}
    used = set(re.findall(r"(?:python -m wavalign|\bwavalign) ([a-z][a-z-]+)", README))
    assert used and used <= names, used - names


def test_gate_rule_example_runs_as_written():
    (code,) = [b for b in blocks("python") if "class WarmupGate" in b]
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    gate = scope["WarmupGate"](warmup=2, lam=0.3)
    rewards = torch.tensor([[1.0, 5.0, 1.0, 5.0]])
    lams = [gate.update(rewards).lam for _ in range(3)]
    assert lams == [0.0, 0.0, 0.3]
    fresh = scope["WarmupGate"](warmup=2, lam=0.3)
    fresh.load_state_dict(gate.state_dict())
    assert fresh.update(rewards).lam == 0.3  # the step count came back with the state
