"""How the world's tools and the ablation get a trained policy without importing the layer above them.

`world diagnose`, `world probe-heard` and the ablation's judge analysis load a checkpoint into the module of the
training config that made it. Building that module takes the Trainer CLI (wavalign.cli) and WavAlignModule
(wavalign.module), which import this package: importing them from here would make the package layers a cycle. So the
entry point, which sits above both, hands the loader down: wavalign.cli.main calls `provide(...)` before it runs a
tool, and `python -m wavalign.world` / `python -m wavalign.ablate` re-enter through `python -m wavalign`
(`run_as_wavalign`), so every way of starting these commands has it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence


class TrainedModule(Protocol):
    """What the tools read of the loaded LightningModule (wavalign.module.WavAlignModule provides it)."""

    policy: Any
    codec: Any
    sampling: Any
    eval_sampling: Any
    group_size: int

    def prompts(self, examples: list[Any]) -> Any: ...


@dataclass
class Loaded:
    """A checkpoint loaded under its training config.

    Args:
        module: The config's module in eval mode, with the checkpoint's weights.
        world: The config's `world:` settings (a WorldSettings-shaped namespace), or None when it has none.
    """

    module: TrainedModule
    world: Any


# (training config, checkpoint, further --key=value overrides of the config) -> the loaded checkpoint
Loader = Callable[[str, str, Sequence[str]], Loaded]
_provided: Loader | None = None


def provide(loader: Loader) -> None:
    """Called by the entry point (wavalign.cli.main) before it runs a tool."""
    global _provided
    _provided = loader


def provided() -> Loader | None:
    """The loader the entry point provided (None outside `wavalign ...`), to hand to a forked job."""
    return _provided


def load(config: str, checkpoint: str, overrides: Sequence[str] = ()) -> Loaded:
    """The checkpoint loaded under `config` by the provided loader."""
    if _provided is None:
        raise RuntimeError(
            "no checkpoint loader: start this command as `wavalign ...` (or `python -m wavalign ...`), "
            "whose entry point provides it"
        )
    return _provided(config, checkpoint, overrides)


def run_as_wavalign(words: Sequence[str]) -> None:
    """Replace this process by `python -m wavalign WORDS ARGS` (ARGS: this process's own arguments): a subpackage's
    `python -m` entry is the package's command of the same name, started where the loader is provided."""
    argv = [sys.executable, "-m", "wavalign", *words, *sys.argv[1:]]
    sys.stdout.flush(), sys.stderr.flush()
    os.execv(sys.executable, argv)
