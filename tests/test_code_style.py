"""The tree is formatted and linted as pyproject.toml's [tool.ruff] says: CI runs the README's test command, so a
change that is not `ruff format`-ed or that `ruff check` flags fails here, with ruff's own report."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["src", "tests", "scripts"]


def ruff(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: `pip install -e .[dev]` installs it")
    return subprocess.run([exe, *args, *PATHS], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_code_is_formatted():
    out = ruff("format", "--check")
    assert out.returncode == 0, f"run `ruff format {' '.join(PATHS)}`:\n{out.stdout}{out.stderr}"


def test_the_linter_finds_nothing():
    out = ruff("check")
    assert out.returncode == 0, f"`ruff check {' '.join(PATHS)}` reports:\n{out.stdout}{out.stderr}"


def test_no_formatter_escape_hatches():
    """Formatter markers (fmt skip / off comments) hide code from the formatter; the code is written to format well
    instead."""
    skip, off = "# fmt" + ": skip", "# fmt" + ": off"  # spelled so that this file does not match itself
    marked = [
        f"{p.relative_to(ROOT)}:{i}"
        for base in PATHS
        for p in sorted((ROOT / base).rglob("*.py"))
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if skip in line or off in line
    ]
    assert not marked, f"formatter markers left: {marked[:20]}"
