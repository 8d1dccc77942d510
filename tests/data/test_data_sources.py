"""Every data source `data.*_file` takes (JSONL, parquet file and glob, save_to_disk folder, hub:LOCAL_FOLDER) gives
the same examples, names the file and row of a bad one, and is never read whole: checking and serving a generated
set of 300,000 rows keeps the process's anonymous memory (after a warm-up on a small set) within a bound well below what the rows hold."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from conftest import ROOT
from wavalign.data.check import check_files
from wavalign.data.check import main as check_main
from wavalign.data.datamodule import WavAlignDataModule
from wavalign.data.sources import LazyExamples, open_source


def rows(n: int, audio: str = "q.wav") -> list[dict]:
    return [
        {
            "messages": [{"role": "user", "content": "<|audio|>"}],
            "audios": [audio],
            "sft_target_text": f"answer {i}",
            "question_text": f"question {i}",
        }
        for i in range(n)
    ]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("WAVALIGN_DATA_CACHE", str(tmp_path / "wavalign_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sf.write(tmp_path / "q.wav", np.zeros(8000, dtype=np.float32), 16000)
    return tmp_path


def test_every_source_kind_gives_the_same_examples(folder):
    from datasets import Dataset

    data = rows(5)
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in data) + "\n\n", encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(data[:3]), folder / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist(data[3:]), folder / "part-1.parquet")
    Dataset.from_list(data).save_to_disk(str(folder / "saved"))
    (folder / "hubdir").mkdir()
    (folder / "hubdir" / "q.wav").write_bytes((folder / "q.wav").read_bytes())
    pq.write_table(pa.Table.from_pylist(data), folder / "hubdir" / "train.parquet")
    (folder / "saved" / "q.wav").write_bytes((folder / "q.wav").read_bytes())
    specs = [
        folder / "train.jsonl",
        str(folder / "part-*.parquet"),
        folder / "saved",
        f"hub:{folder / 'hubdir'}::train",
    ]
    for spec in specs:
        report = check_files([spec], decode_audio=True)
        assert report.ok, (spec, report.problems)
        examples = report.parsed[next(iter(report.parsed))]
        assert isinstance(examples, LazyExamples) and len(examples) == 5
        assert [e.target_text for e in examples] == [f"answer {i}" for i in range(5)]
        assert examples[4].audios[0].name == "q.wav" and examples[4].audios[0].is_file()
        assert [e.question_text for e in examples[1:3]] == ["question 1", "question 2"]


def test_a_bad_parquet_row_is_named_by_file_and_row(folder):
    data = rows(4)
    data[2]["audios"] = ["missing.wav"]
    del data[3]["sft_target_text"]
    pq.write_table(pa.Table.from_pylist(data[:2]), folder / "a.parquet")
    pq.write_table(pa.Table.from_pylist(data[2:]), folder / "b.parquet")
    report = check_files([str(folder / "*.parquet")], decode_audio=False)
    assert report.problems[0].startswith(f"{folder / 'b.parquet'}:row 0: field 'audios' names 'missing.wav'")
    assert report.problems[1] == f"{folder / 'b.parquet'}:row 1: missing field 'sft_target_text'"
    assert report.examples == 2  # only the rows that passed are served


def test_check_data_command_reads_parquet_and_names_missing_sources(folder, capsys):
    pq.write_table(pa.Table.from_pylist(rows(2)), folder / "t.parquet")
    assert check_main([str(folder / "t.parquet")]) == 0
    assert "check-data: 2 examples" in capsys.readouterr().out
    assert check_main([str(folder / "none-*.parquet"), str(folder / "plain_folder")]) == 1
    out = capsys.readouterr().out
    assert "none-*.parquet: no parquet file matches" in out and "plain_folder: file does not exist" in out


def test_embedded_audio_bytes_are_refused_with_what_to_do(folder):
    table = pa.Table.from_pylist(
        [{"prompt": "<|audio|>", "reply": "hi", "audio": {"bytes": b"RIFF", "path": "x.wav"}}]
    )
    pq.write_table(table, folder / "e.parquet")
    report = check_files([str(folder / "e.parquet")], decode_audio=False)
    assert "e.parquet:row 0: field 'audio' holds embedded audio bytes" in report.problems[0]
    assert "wavalign convert" in report.problems[0]


def test_datamodule_serves_parquet_and_a_jsonl_error_keeps_file_and_line(folder):
    pq.write_table(pa.Table.from_pylist(rows(6)), folder / "t.parquet")
    dm = WavAlignDataModule(train_file=str(folder / "t.parquet"), batch_size=2, shuffle=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert [e.target_text for e in batch["examples"]] == ["answer 0", "answer 1"]
    (folder / "bad.jsonl").write_text('{"prompt": "a", "reply": "b"}\n\n{x\n', encoding="utf-8")
    source = open_source(folder / "bad.jsonl")
    assert [w for _, w, _, p in source.scan() if p] == [f"{folder / 'bad.jsonl'}:3"]


MEMORY_PROBE = textwrap.dedent(
    """
    import sys, threading, time
    import datasets  # its import is not the data's
    from wavalign.data.datamodule import WavAlignDataModule

    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    warm = WavAlignDataModule(train_file=sys.argv[2], batch_size=64)  # one-time costs: lazy imports, allocator arenas
    warm.setup("fit")
    sum(1 for b, _ in zip(warm.train_dataloader(), range(3)))
    peak, done = [0], []
    def watch():
        while not done:
            peak[0] = max(peak[0], anon()); time.sleep(0.005)
    start = anon()
    threading.Thread(target=watch, daemon=True).start()
    dm = WavAlignDataModule(train_file=sys.argv[1], batch_size=64)
    dm.setup("fit")  # checks every row
    n = sum(len(b["examples"]) for b, _ in zip(dm.train_dataloader(), range(50)))
    served = sum(len(e.target_text) for e in dm.splits["train"])  # every row parsed once more, in order
    done.append(1)
    print(len(dm.splits["train"]), n, served, peak[0] - start)
    """
)


def test_a_large_dataset_is_never_loaded_whole(folder):
    n, pad = 300_000, "x" * 300  # ~100 MB of text: more than the bound, which a loaded list would exceed
    table = pa.table(
        {
            "prompt": pa.array([f"question {i} {pad}" for i in range(n)]),
            "reply": pa.array([f"reply {i}" for i in range(n)]),
        }
    )
    pq.write_table(table, folder / "big.parquet", row_group_size=10_000)
    del table
    pq.write_table(pa.table({"prompt": [f"q {i}" for i in range(20_000)], "reply": ["r"] * 20_000}), folder / "warm.parquet")
    env = {"PYTHONPATH": str(ROOT / "src"), "WAVALIGN_DATA_CACHE": str(folder / "c"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(folder / "big.parquet"), str(folder / "warm.parquet")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows_seen, batched, served, grew = map(int, out.stdout.split())
    assert (rows_seen, batched) == (n, 50 * 64)
    assert served == sum(len(f"reply {i}") for i in range(n))
    # measured peak: about 50 MiB (the conversion's batches); the rows alone hold 100 MB of text, and parsed into
    # DialogueExamples (what a list of them would keep) several times that
    assert grew < 80 * 2**20, f"anonymous memory grew by {grew / 2**20:.0f} MiB"
