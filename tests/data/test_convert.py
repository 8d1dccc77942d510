"""`wavalign convert` on small fixtures written here in each set's own layout (real parquet with Audio columns stored
as datasets stores them, {"bytes", "path"}; a JSONL + WAV folder; WebDataset tar shards with MP3 members), then
`check-data` on the result; codes of another tokenizer refused with what to do; bad rows named by file and row; and a
two-step `fit` of the debug policy on a converted set, its WAVs encoded by a codec fitted on them."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import QUICK_FIT
from wavalign.data.check import main as check_data
from wavalign.data.convert.cli import main as convert_main
from wavalign.data.schema import load_jsonl


def tone(hz: float, seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def encoded(wav: np.ndarray, fmt: str = "WAV", rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wav, rate, format=fmt)
    return buf.getvalue()


def audio_cell(i: int, hz: float) -> dict:
    """A datasets Audio value as parquet stores it."""
    return {"bytes": encoded(tone(hz)), "path": f"{i}.wav"}


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def voiceassistant(tmp_path):
    rows = [
        {"split_name": "identity", "index": str(i), "round": "0", "question": f"What is {i} plus {i}?",
         "question_audio": audio_cell(i, 200 + 20 * i), "answer": f"It is {2 * i}.",
         "answer_snac": "# 1 2 3 4 5 6 7 # 8 9 10 11 12 13 4095"}  # frames of 7 codes
        for i in range(3)
    ]
    return [str(write_parquet(tmp_path / "train-00000-of-00001.parquet", rows))]


def ultrachat(tmp_path):
    rows = [
        {"split_name": "ultrachat", "index": "7", "round": 1, "question": "<USER>: Name a fruit.",
         "question_audio": audio_cell(0, 210), "answer": "An apple.", "answer_cosyvoice_speech_token": [1, 2, 3]},
        {"split_name": "ultrachat", "index": "7", "round": 2,
         "question": "USER: Name a fruit. ASSISTANT: An apple. <USER>: And a red one?",
         "question_audio": audio_cell(1, 260), "answer": "A cherry.", "answer_cosyvoice_speech_token": [4, 5]},
    ]
    return [str(write_parquet(tmp_path / "train-00000-of-00002.parquet", rows))]


def instructs2s(tmp_path):
    rows = [
        {"round": 1, "question": f"Tell me fact {i}.", "question_audio": audio_cell(i, 180 + 30 * i),
         "answer": f"Here is fact {i}.", "answer_audio": audio_cell(i, 300 + 25 * i)}
        for i in range(4)
    ]
    return [str(write_parquet(tmp_path / "train-00000-of-00001.parquet", rows))]


def ultravoice(tmp_path):
    lines = []
    for i, (dim, style) in enumerate((("emotion", "happy"), ("speed", "fast"), ("accent", "GB"))):
        for side, hz in (("instructions", 220 + 10 * i), ("responses", 330 + 10 * i)):
            folder = tmp_path / "wav" / side / dim
            folder.mkdir(parents=True, exist_ok=True)
            sf.write(folder / f"ultrachat_{i}.wav", tone(hz), 16000)
        lines.append({"key": f"ultrachat_{i}", "dimension": dim, "style": style,
                      "instruction_text": f"Say hi in a {style} way.", "response_text": "Hi there!",
                      "instruction_wav": f"wav/instructions/{dim}/ultrachat_{i}.wav",
                      "response_wav": f"wav/responses/{dim}/ultrachat_{i}.wav"})
    path = tmp_path / "ultravoice_train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return [str(path)]


def emilia(tmp_path):
    (tmp_path / "EN").mkdir()
    with tarfile.open(tmp_path / "EN" / "EN-B000000.tar", "w") as tar:
        for i in range(3):
            key = f"EN_B00000_S00000_W00000{i}"
            meta = {"id": key, "wav": f"{key}.mp3", "text": f"Sentence number {i}.", "duration": 0.5,
                    "speaker": "EN_B00000_S00000", "language": "en", "dnsmos": 3.3}
            for ext, data in (("mp3", encoded(tone(240 + 30 * i), "MP3")), ("json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return [str(tmp_path / "EN" / "EN-B*.tar")]


LAYOUTS = {
    "voiceassistant_400k": (voiceassistant, ["--text-only-target"], 3),
    "ultrachat_slam_omni": (ultrachat, ["--speech-codes", "cosyvoice"], 2),
    "instructs2s_200k": (instructs2s, [], 4),
    "ultravoice": (ultravoice, [], 3),
    "emilia": (emilia, [], 3),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_converts_and_passes_check_data(layout, tmp_path, capsys):
    build, flags, n = LAYOUTS[layout]
    (tmp_path / "in").mkdir()
    inputs = build(tmp_path / "in")
    out = tmp_path / "out"
    assert convert_main([*inputs, "--layout", layout, "--out", str(out), *flags]) == 0, capsys.readouterr().out
    assert f"convert: {n} examples" in capsys.readouterr().out
    assert check_data([str(out / "data.jsonl")]) == 0, capsys.readouterr().out
    examples = load_jsonl(out / "data.jsonl")
    assert len(examples) == n and all(len(e.audios) == 1 for e in examples)
    first = examples[0]
    if layout == "ultrachat_slam_omni":
        assert [m["content"] for m in examples[1].messages] == ["Name a fruit.", "An apple.", "<|audio|>"]
        assert examples[1].question_text == "And a red one?" and examples[1].target_speech == [4, 5]
    if layout == "voiceassistant_400k":
        assert first.target_text == "It is 0." and first.target_speech is None and first.target_audio is None
    if layout == "ultravoice":
        assert first.style == "emotion: happy" and first.target_audio is not None
    if layout == "emilia":
        assert first.reference_answer == "Sentence number 0." and first.messages[-1]["content"].startswith("Repeat")
    if layout == "instructs2s_200k":  # the decoded reply audio is the dataset's own, sample for sample (16-bit)
        wav, rate = sf.read(first.target_audio, dtype="float32")
        assert rate == 16000 and np.abs(wav - tone(300)).max() < 1e-4


def test_codes_of_another_tokenizer_are_refused_with_what_to_do(tmp_path, capsys):
    inputs = voiceassistant(tmp_path)
    assert convert_main([*inputs, "--layout", "voiceassistant_400k", "--out", str(tmp_path / "o")]) == 1
    said = capsys.readouterr().out
    assert "only as snac codes" in said and "--speech-codes snac" in said and "--text-only-target" in said
    assert convert_main([*inputs, "--layout", "voiceassistant_400k", "--out", str(tmp_path / "o"),
                         "--speech-codes", "glm4-voice"]) == 1
    assert "A policy whose speech tokenizer is not snac cannot use them" in capsys.readouterr().out
    assert convert_main([*inputs, "--layout", "voiceassistant_400k", "--out", str(tmp_path / "k"),
                         "--speech-codes", "snac"]) == 0
    assert load_jsonl(tmp_path / "k" / "data.jsonl")[0].target_speech == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 4095]
    # and a policy with a 64-code vocabulary is told at check-data, naming the row
    (tmp_path / "cfg.yaml").write_text("model: {policy: {init_args: {num_speech_tokens: 64}}}\n", encoding="utf-8")
    assert check_data([str(tmp_path / "k" / "data.jsonl"), "--no-audio", "--config", str(tmp_path / "cfg.yaml")]) == 1
    assert "data.jsonl:1: sft_target_codes: code 4095 outside the policy's 64 speech tokens" in capsys.readouterr().out


def test_bad_rows_are_named_by_file_and_row(tmp_path, capsys):
    rows = [{"round": 1, "question": "q", "question_audio": audio_cell(0, 200), "answer": "a",
             "answer_audio": {"bytes": b"not audio at all", "path": "x.wav"}},
            {"round": 1, "question": "q", "answer": "a", "answer_audio": audio_cell(1, 200)}]
    path = write_parquet(tmp_path / "bad.parquet", rows)
    assert convert_main([str(path), "--layout", "instructs2s_200k", "--out", str(tmp_path / "o")]) == 1
    assert f"{path}:row 0: column 'answer_audio' could not be decoded as audio" in capsys.readouterr().out
    assert convert_main([str(path), "--layout", "instructs2s_200k", "--out", str(tmp_path / "o"), "--skip-bad"]) == 1
    out = capsys.readouterr().out
    assert f"{path}:row 1: column 'question_audio' holds no audio" in out and "no rows converted" in out


def test_training_runs_on_a_converted_set(tmp_path):
    from wavalign.audio.world_codec import WorldCodec
    from wavalign.cli import main

    inputs = instructs2s(tmp_path)
    out = tmp_path / "out"
    assert convert_main([*inputs, "--layout", "instructs2s_200k", "--out", str(out)]) == 0
    wavs = [sf.read(p, dtype="float32")[0] for p in sorted((out / "audio").glob("*.wav"))]
    WorldCodec.fit(wavs, 16000, num_codes=64, frame_ms=40.0, seed=0).save(tmp_path / "codebook.npz")
    cli = main(
        [
            "fit",
            "--config",
            "configs/debug_interleaved.yaml",
            *QUICK_FIT,
            f"--data.train_file={out / 'data.jsonl'}",
            "--data.val_file=null",
            "--data.batch_size=2",
            "--model.codec=wavalign.audio.world_codec.WorldCodec",
            f"--model.codec.codebook_path={tmp_path / 'codebook.npz'}",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
        ]
    )
    assert cli.trainer.global_step == 2  # two updates on the converted set's spoken questions and replies
    assert len(cli.datamodule.splits["train"]) == 4
