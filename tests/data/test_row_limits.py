"""Rows that used to pass every check and crash a run mid-way are refused before step 1, by `check-data --config`
(the real command) and by `fit` alike, each named by file:line with its reason: audio the config cannot encode,
NaN samples, more tokens than the model's context or `data.max_tokens`, a 200,000-word text. A data error that
still happens mid-run names its row."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import ROOT, tiny_policy
from wavalign.cli import main
from wavalign.data.row_limits import RowError, model_context, row_problems, row_prompt
from wavalign.data.schema import SchemaError, load_jsonl
from wavalign.data.speech import SpeechTokenCache

pytestmark = pytest.mark.fault

GOOD = json.loads((ROOT / "configs" / "data" / "debug_train.jsonl").read_text().splitlines()[0])
WITH_AUDIO = {"messages": [{"role": "user", "content": "<|audio|>"}], "audios": ["ok.wav"], "sft_target_text": "four"}


def write_rows(path, rows):
    sf.write(path.parent / "ok.wav", (0.1 * np.sin(np.arange(8000) / 10)).astype(np.float32), 16000)
    sf.write(path.parent / "nan.wav", np.full(8000, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def bad_rows(tmp_path):
    """Lines 1-4 fine; 5: audio but no codes (the debug config has no codec); 6: 3,000 words (15,000 characters,
    under the text limit) = 3,000 text tokens, beyond the tiny model's 2,048; 7: 200,000 words."""
    rows = [GOOD] * 4 + [WITH_AUDIO, dict(GOOD, reply=" ".join(["four"] * 3000)), dict(GOOD, reply="four " * 200_000)]
    return write_rows(tmp_path / "train.jsonl", rows)


def check_data(path, *extra, env=None):
    return subprocess.run(
        [sys.executable, "-m", "wavalign", "check-data", str(path), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env=env,
    )


def test_check_data_and_fit_refuse_the_same_rows_naming_each(bad_rows, monkeypatch):
    out = check_data(bad_rows, "--config", "configs/debug_interleaved.yaml")
    assert out.returncode == 1, out.stderr[-2000:]
    first = out.stdout.splitlines()[0]
    assert "3 problem(s)" in first, out.stdout
    expected = {
        5: "but no codec is configured (model.codec)",
        6: "tokens exceed the model's context of 2048 tokens",
        7: "sft_target_text: 1,000,000 characters, more than 20,000",
    }
    for line, what in expected.items():
        assert any(p.startswith(f"{bad_rows}:{line}: ") and what in p for p in out.stdout.splitlines()), (line, out.stdout)
    monkeypatch.chdir(ROOT)
    with pytest.raises(SchemaError) as err:  # the cheap check (line 7) stops the data module first
        main(["fit", "--config", "configs/debug_interleaved.yaml", f"--data.train_file={bad_rows}",
              "--trainer.logger=false", "--trainer.enable_progress_bar=false"])
    assert f"{bad_rows}:7: sft_target_text" in str(err.value)
    bad_rows.write_text("".join(bad_rows.read_text().splitlines(keepends=True)[:6]))  # without line 7
    with pytest.raises(SchemaError, match="2 data row") as err:
        main(["fit", "--config", "configs/debug_interleaved.yaml", f"--data.train_file={bad_rows}",
              "--trainer.logger=false", "--trainer.enable_progress_bar=false"])
    assert f"{bad_rows}:5: " in str(err.value) and f"{bad_rows}:6: 1 prompt" not in str(err.value)
    assert f"{bad_rows}:6: " in str(err.value) and "exceed the model's context of 2048" in str(err.value)


def debug_with(tmp_path, codec, max_tokens):
    """The debug config with a codec and data.max_tokens, as one file (check-data takes one --config); its relative
    paths are read from the repository root, where both commands run."""
    cfg = yaml.safe_load((ROOT / "configs" / "debug_interleaved.yaml").read_text())
    cfg["model"]["codec"] = {"class_path": codec}
    cfg["data"]["init_args"]["max_tokens"] = max_tokens
    path = tmp_path / "debug_codec.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_nan_audio_and_a_configured_limit_are_refused_before_step_one(tmp_path, monkeypatch):
    """Under a config with a codec: NaN samples (line 5) and a 100-word reply over data.max_tokens=100 (line 6)."""
    rows = [GOOD] * 4 + [dict(WITH_AUDIO, audios=["nan.wav"]), dict(GOOD, reply="four " * 100)]
    path = write_rows(tmp_path / "train.jsonl", rows)
    config = debug_with(tmp_path, "callbacks.toys.ToyCodec", 100)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    out = check_data(path, "--config", str(config), env=env)
    assert out.returncode == 1, out.stderr[-2000:]
    assert f"{path}:5: audios: nan.wav holds NaN or infinite samples" in out.stdout
    assert f"{path}:6: " in out.stdout and "reply tokens exceed data.max_tokens=100" in out.stdout
    monkeypatch.chdir(ROOT)
    with pytest.raises(SchemaError, match="2 data row") as err:
        main(["fit", "--config", str(config), f"--data.train_file={path}", "--trainer.logger=false",
              "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={tmp_path}"])
    assert f"{path}:5: audio file" in str(err.value) and "holds NaN or infinite samples" in str(err.value)
    assert f"{path}:6: " in str(err.value) and "reply tokens exceed data.max_tokens=100" in str(err.value)


def test_row_lengths_are_counted_in_the_policys_own_tokens(tmp_path):
    """A plain row of 1 placeholder with 15 prompt codes and a 5-word reply with 15 reply codes: the policy lays the
    reply out in chunks; the limit is compared with exactly len(prompt_ids) + len(reply_ids)."""
    path = write_rows(tmp_path / "rows.jsonl", [GOOD])
    ex = load_jsonl(path)[0]
    policy, speech = tiny_policy(), SpeechTokenCache(None)
    prompt = len(policy.prompt_ids(ex.messages, ex.prompt_speech))
    reply = len(policy.reply_ids(ex.target_text, ex.target_speech))
    assert row_problems(ex, policy, speech, prompt + reply, 0) == []
    assert row_problems(ex, policy, speech, prompt + reply - 1, 0) == [
        f"{path}:1: {prompt} prompt + {reply} reply tokens exceed data.max_tokens={prompt + reply - 1}"
    ]
    assert model_context(policy) == 2048
    over = 2048 - prompt + 1  # a rollout of max_new_tokens tokens must fit the context too
    assert row_problems(ex, policy, speech, None, over - 1) == []
    assert row_problems(ex, policy, speech, None, over) == [
        f"{path}:1: {prompt} prompt + {over} max_new_tokens tokens exceed the model's context of 2048 tokens"
    ]


def test_a_data_error_mid_run_names_its_row(tmp_path):
    """An encoding failure that no start-up check foresaw (a codec raising on one file) names file:line."""

    class BrokenCodec:
        num_codes, sample_rate = 64, 16000

        def encode(self, wav, sr):
            raise MemoryError("out of memory in the codec")

    path = write_rows(tmp_path / "rows.jsonl", [WITH_AUDIO])
    ex = load_jsonl(path)[0]
    with pytest.raises(RowError, match=rf"^{path}:1: the codec cannot encode .*ok.wav: MemoryError: out of memory"):
        row_prompt(tiny_policy(), SpeechTokenCache(BrokenCodec()), ex)
