"""docs/extending.md's worked examples run exactly as written: each file block is written to disk under its own name,
imported from there by its YAML class_path, and trained with through the CLI for a few steps."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import QUICK_FIT, scalars
from doc_blocks import named_blocks

from wavalign.cli import main


@pytest.fixture
def examples(tmp_path: Path, monkeypatch) -> Path:
    """The doc's files in a folder on sys.path (as a user's project folder would be)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, text in named_blocks().items():
        (folder / name).write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in ("my_gates", "my_judges"):  # imported from the folder; my_suites is the doc module of doc_blocks
        sys.modules.pop(name, None)


def fit(root: Path, overlay: Path, out: Path, monkeypatch) -> tuple[object, dict]:
    monkeypatch.chdir(root)
    cli = main(
        [
            "fit",
            "--config",
            "configs/debug_interleaved.yaml",
            "--config",
            str(overlay),
            *QUICK_FIT,
            "--trainer.logger.init_args.save_dir",
            str(out),
            "--trainer.logger.init_args.name",
            "r",
        ]
    )
    return cli, scalars(out / "r")


def test_the_doc_names_its_files():
    assert {"my_gates.py", "my_gate.yaml", "my_judges.py", "my_judge.yaml", "my_suites.py", "my_suite.yaml"} <= set(
        named_blocks()
    )


def test_the_gate_rule_example(root: Path, examples: Path, tmp_path: Path, monkeypatch):
    from my_gates import VarianceGate

    out = VarianceGate().update(torch.tensor([[5.0, 1.0, 1.0, 1.0], [3.0, 3.0, 3.0, 3.0]]))
    assert out.lam == pytest.approx(0.8 * (0.75 + 0.0) / 2, rel=1e-12)  # the doc's hand value, 0.3
    cli, logs = fit(root, examples / "my_gate.yaml", tmp_path, monkeypatch)
    assert type(cli.model.gate.rule).__name__ == "VarianceGate" and cli.trainer.global_step == 2
    assert all(0.0 <= v <= 0.8 for _, v in logs["gate/lambda"])
    assert [v for _, v in logs["gate/lambda"]] == pytest.approx([v for _, v in logs["gate/lambda_raw"]], abs=1e-6)


def test_the_judge_example(root: Path, examples: Path, tmp_path: Path, monkeypatch):
    from my_judges import OverlapJudge

    from wavalign.judges.base import JudgeRequest

    got = OverlapJudge().score(
        [
            JudgeRequest("two plus two", "it is four", reference="four"),
            JudgeRequest("q", "new york", reference="new york city"),
            JudgeRequest("q", "anything"),
        ]
    )
    assert [s.score for s in got[:2]] == pytest.approx([5.0, 1.0 + 4.0 * 2 / 3])
    assert not got[2].reliable
    cli, logs = fit(root, examples / "my_judge.yaml", tmp_path, monkeypatch)
    assert type(cli.model.judge).__name__ == "OverlapJudge"
    assert "judge/overlap" in logs and all(1.0 <= v <= 5.0 for _, v in logs["reward/mean"])
