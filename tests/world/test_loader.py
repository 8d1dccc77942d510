"""The checkpoint loader is handed down by the entry point (wavalign.world.loader): without it the tools say how to
start them; `wavalign ...` provides it."""

from __future__ import annotations

import pytest

from wavalign.world import loader


def test_without_a_provided_loader_the_error_says_how_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_provided", None)
    with pytest.raises(RuntimeError, match="wavalign"):
        loader.load("configs/tiny.yaml", "x.ckpt")


def test_the_entry_point_provides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from wavalign.cli import load_checkpoint, main

    monkeypatch.setattr(loader, "_provided", None)
    with pytest.raises(SystemExit):
        main(["world", "info"])
    assert loader._provided is load_checkpoint
