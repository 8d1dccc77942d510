"""A `fit` that fails before step 1 (bad data here) leaves no version folder; a folder with any logged value, or
any other file, is never taken for empty."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from torch.utils.tensorboard import SummaryWriter

from wavalign.cli import main
from wavalign.data.schema import SchemaError
from wavalign.runtime.empty_run import holds_nothing


def test_a_run_refused_before_step_one_leaves_no_version_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    good = (ROOT / "configs" / "data" / "debug_train.jsonl").read_text().splitlines()[0]
    bad = json.dumps({"prompt": "<|audio|>", "reply": "four", "prompt_speech": [[99]]})  # code beyond 64
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join([good, good, bad]) + "\n")
    (tmp_path / "runs" / "debug_interleaved" / "version_0").mkdir(parents=True)  # an earlier run's, kept
    with pytest.raises(SchemaError, match="train.jsonl:3: audio_codes: code 99"):
        main(
            [
                "fit",
                "--config",
                "configs/debug_interleaved.yaml",
                f"--data.train_file={data}",
                "--trainer.enable_progress_bar=false",
                "--trainer.logger.init_args.save_dir",
                str(tmp_path / "runs"),
            ]
        )
    assert [p.name for p in (tmp_path / "runs" / "debug_interleaved").iterdir()] == ["version_0"]


def test_only_start_up_files_count_as_empty(tmp_path):
    header_only = tmp_path / "a"
    SummaryWriter(str(header_only)).close()
    (header_only / "config.yaml").write_text("seed_everything: 0\n")
    assert holds_nothing(header_only)
    logged = tmp_path / "b"
    with SummaryWriter(str(logged)) as w:
        w.add_scalar("loss/total", 1.5, 0)
    assert not holds_nothing(logged)
    other = tmp_path / "c"
    (other / "checkpoints").mkdir(parents=True)
    (other / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert not holds_nothing(other) and not holds_nothing(tmp_path / "missing")
