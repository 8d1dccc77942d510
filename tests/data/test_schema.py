import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

from wavalign.data.datamodule import RepeatBatchSampler, WavAlignDataModule
from wavalign.data.schema import SchemaError, load_jsonl


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def audio_dir(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    sf.write(d / "q.wav", np.zeros(1600, dtype=np.float32), 16000)
    sf.write(d / "a.wav", np.zeros(3200, dtype=np.float32), 16000)
    return d


def reference_row(**over):
    row = {
        "messages": [{"role": "system", "content": "style: calm"}, {"role": "user", "content": "<|audio|>"}],
        "audios": ["audio/q.wav"],
        "sft_target_text": "two plus two is four",
        "sft_target_audio": "audio/a.wav",
        "task_type": "s2s",
        "question_text": "what is two plus two",
    }
    row.update(over)
    return row


def test_reference_schema_resolves_paths_relative_to_file(tmp_path, audio_dir):
    ex, = load_jsonl(write_jsonl(tmp_path / "train.jsonl", [reference_row(reference_answer="four", style="calm")]))
    assert ex.audios == [(audio_dir / "q.wav").resolve()] and ex.target_audio == (audio_dir / "a.wav").resolve()
    assert ex.reference_answer == "four" and ex.style == "calm" and ex.source.endswith("train.jsonl:1")


def test_plain_schema_with_pretokenized_speech(tmp_path):
    ex, = load_jsonl(write_jsonl(tmp_path / "p.jsonl", [{"prompt": "<|audio|>", "prompt_speech": [[1, 2]], "reply": "hi"}]))
    assert ex.prompt_speech == [[1, 2]] and ex.target_text == "hi" and ex.target_speech is None


@pytest.mark.parametrize(
    "row, message",
    [
        ("{not json", r"bad\.jsonl:2: not valid JSON"),
        (reference_row(audios=["audio/missing.wav"]), r"bad\.jsonl:2: field 'audios' names 'audio/missing.wav'"),
        ({k: v for k, v in reference_row().items() if k != "sft_target_text"}, r"bad\.jsonl:2: missing field 'sft_target_text'"),
        (reference_row(sft_target_text=3), r"bad\.jsonl:2: field 'sft_target_text' must be str"),
        (reference_row(audios=[]), r"bad\.jsonl:2: 1 '<\|audio\|>' placeholders but 0 audios"),
        ({"prompt": "hi", "reply": "x", "reply_speech": [1, -2]}, r"bad\.jsonl:2: field 'reply_speech'"),
        ({"question": "hi"}, r"bad\.jsonl:2: neither the reference schema"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, audio_dir, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [reference_row(), row])
    with pytest.raises(SchemaError, match=message):
        load_jsonl(path)


def test_repeat_batch_sampler_repeats_each_batch():
    batches = list(RepeatBatchSampler(5, 2, repeat=3, shuffle=False))
    assert batches == [[0, 1]] * 3 + [[2, 3]] * 3  # the short last batch is dropped: groups stay full


def test_datamodule_rejects_too_small_train_set(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "hi", "reply": "x"}])
    dm = WavAlignDataModule(train_file=str(path), batch_size=2)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        dm.setup("fit")
