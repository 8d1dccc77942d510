"""check-data on a file with one problem per line (real WAV files, one corrupt), through the real command; and `fit`
stopping at start-up, naming the line, when its data holds a corrupt WAV."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT
from wavalign.cli import main
from wavalign.data.schema import SchemaError

pytestmark = pytest.mark.fault


def good(**over):
    row = {"messages": [{"role": "user", "content": "<|audio|>"}], "audios": ["q.wav"], "sft_target_text": "two",
           "sft_target_audio": "a.wav", "audio_codes": [[1, 2, 3]], "sft_target_codes": [4, 5]}  # the debug config has no codec
    row.update(over)
    return json.dumps(row)


@pytest.fixture
def dataset(tmp_path):
    sf.write(tmp_path / "q.wav", np.zeros(8000, dtype=np.float32), 16000)
    sf.write(tmp_path / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(tmp_path / "tiny.wav", np.zeros(100, dtype=np.float32), 16000)
    sf.write(tmp_path / "rate.wav", np.zeros(8000, dtype=np.float32), 8000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio")
    lines = [
        good(),                                                       # 1 fine
        "{not json",                                                  # 2
        good(sft_target_text=None) .replace('"sft_target_text": null, ', ""),  # 3 missing field
        good(audios=["corrupt.wav"]),                                 # 4 corrupt WAV
        good(sft_target_text="  "),                                   # 5 empty text
        good(audio_codes=[[1, 2, 99]]),                               # 6 code outside 64 speech tokens
        good(audios=["q.wav", "q.wav"], audio_codes=[[1], [2]]),      # 7 two audios, one placeholder
        good(sft_target_audio="tiny.wav"),                            # 8 too short
        good(audios=["rate.wav"]),                                    # 9 other sample rate: a note only
        good(sft_target_audio="missing.wav"),                         # 10 no such file
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_data_reports_every_problem_with_its_line(dataset):
    out = subprocess.run(
        [sys.executable, "-m", "wavalign", "check-data", str(dataset), "--config", "configs/debug_interleaved.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 1, out.stderr
    text = out.stdout
    expected = {
        2: "not valid JSON", 3: "missing field 'sft_target_text'", 4: "audios: cannot read audio file",
        5: "sft_target_text: empty demonstration text", 6: "audio_codes: code 99 outside the policy's 64 speech tokens",
        7: "1 '<|audio|>' placeholders but 2 audios", 8: "sft_target_audio: tiny.wav lasts 0.01 s",
        10: "sft_target_audio' names 'missing.wav', which does not exist",
    }
    for line, what in expected.items():
        assert f"{dataset}:{line}: " in text and what in text, (line, what, text)
    assert f"{dataset}:1:" not in text and f"{dataset}:9:" not in text  # fine, and a resampling note is no problem
    assert f"{len(expected)} problem(s)" in text.splitlines()[0] and "6 examples" in text.splitlines()[0]  # lines 2, 3, 7, 10 do not parse


def test_a_clean_file_passes(tmp_path):
    sf.write(tmp_path / "q.wav", np.zeros(8000, dtype=np.float32), 16000)
    sf.write(tmp_path / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    (tmp_path / "ok.jsonl").write_text(good() + "\n" + good() + "\n")
    from wavalign.data.check import main as check_data

    assert check_data([str(tmp_path / "ok.jsonl")]) == 0


def test_fit_stops_before_step_one_naming_the_corrupt_line(dataset, tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    lines = dataset.read_text().splitlines()
    dataset.write_text("\n".join([lines[0], lines[0], lines[0], lines[3]]) + "\n")  # line 4: the corrupt WAV
    with pytest.raises(SchemaError, match=rf"{dataset.name}:4: audios: cannot read audio file"):
        main(["fit", "--config", "configs/debug_interleaved.yaml", f"--data.train_file={dataset}",
              "--trainer.logger=false", "--trainer.enable_progress_bar=false"])


def test_another_sample_rate_is_a_note_not_a_problem(dataset):
    from wavalign.data.check import check_file

    report = check_file(dataset, sample_rate=16000)
    assert any(n.startswith(f"{dataset}:9: audios: rate.wav is 8000 Hz; it is resampled") for n in report.notes)
    assert not any(p.startswith(f"{dataset}:9:") for p in report.problems)
