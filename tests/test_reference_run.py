"""A short deterministic run of the debug config against stored numbers: any change that moves `loss/total`,
`gate/lambda` or `reward/mean` at any step is seen at once, and a rerun in the same process must repeat them exactly
(the README's determinism claim).

A change that is meant to move the numbers updates the reference deliberately, and says why in its commit:
    WAVALIGN_UPDATE_REFERENCE=1 python -m pytest tests/test_reference_run.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import scalars

from wavalign.cli import main

REFERENCE = Path(__file__).parent / "data" / "reference_run" / "debug_interleaved.json"
TAGS = ("loss/total", "gate/lambda", "reward/mean", "loss/po", "loss/sft")
STEPS = 8


def run_debug(tmp_path: Path, name: str) -> dict[str, list[float]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU kernels may sum in another order with more threads
    try:
        main(
            [
                "fit",
                "--config",
                "configs/debug_interleaved.yaml",
                f"--trainer.max_steps={STEPS}",
                "--trainer.limit_val_batches=0",
                "--trainer.callbacks=[]",
                "--trainer.enable_progress_bar=false",
                "--trainer.enable_checkpointing=false",
                "--trainer.logger.init_args.save_dir",
                str(tmp_path),
                "--trainer.logger.init_args.name",
                name,
            ]
        )
    finally:
        torch.set_num_threads(threads)
    logs = scalars(tmp_path / name)
    out = {}
    for tag in TAGS:
        steps = sorted(logs[tag])
        assert [s for s, _ in steps] == list(range(STEPS)), tag
        out[tag] = [v for _, v in steps]
    return out


def test_the_debug_run_repeats_its_stored_numbers(tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    got = run_debug(tmp_path, "a")
    if os.environ.get("WAVALIGN_UPDATE_REFERENCE") == "1":
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE.write_text(
            json.dumps({"config": "configs/debug_interleaved.yaml", "steps": STEPS, "values": got}, indent=1) + "\n"
        )
        pytest.skip(f"reference rewritten: {REFERENCE}")
    stored = json.loads(REFERENCE.read_text())["values"]
    for tag in TAGS:
        assert got[tag] == pytest.approx(stored[tag], rel=1e-4, abs=1e-6), (
            f"{tag} moved: {got[tag]} vs stored {stored[tag]}"
        )
    assert len(set(stored["reward/mean"])) > 1 and max(stored["gate/lambda"]) > 0  # the reference exercises the gate
    again = run_debug(tmp_path, "b")
    assert again == got, "the same config run twice in one process gave different numbers"
