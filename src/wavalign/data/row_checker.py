"""How `check-data --config` gets the checks `fit` runs against a config's built policy (wavalign.data.row_limits).

Building the module takes the Trainer CLI, above this package in the import graph; so, as for the world's checkpoint
loader (wavalign.world.loader), the entry point hands the builder down: wavalign.cli.main calls `provide_row_checker`.
"""

from __future__ import annotations

from typing import Callable, Iterable

from wavalign.data.schema import DialogueExample

# (config path) -> a function listing the problems of rows under that config's policy, codec and data limits
RowChecker = Callable[[Iterable[DialogueExample]], list[str]]
_builder: Callable[[str], RowChecker] | None = None


def provide_row_checker(builder: Callable[[str], RowChecker]) -> None:
    """Called by the entry point (wavalign.cli.main) before it runs a tool."""
    global _builder
    _builder = builder


def row_checker(config: str) -> RowChecker | None:
    """The provided builder's checker for `config`; None when the command was not started through `wavalign`."""
    return None if _builder is None else _builder(config)
