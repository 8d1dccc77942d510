"""The parquet exporter on a small parquet file written here in the hlt-lab/voicebench layout (a `datasets` Audio
column stored as {"bytes", "path"}; ifeval's key / instruction_id_list / kwargs columns), read back by our loader."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from wavalign.audio.io import read_wav
from wavalign.benchmarks import load_benchmark
from wavalign.benchmarks.export import ExportError, export_parquet, main


def wav_bytes(freq: float, sr: int = 16000, fmt: str = "WAV") -> tuple[bytes, np.ndarray]:
    t = np.arange(sr // 4) / sr
    wav = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, wav, sr, format=fmt, subtype="PCM_16")
    return buf.getvalue(), wav


def ifeval_parquet(path, audio):
    kwargs_type = pa.list_(
        pa.struct([("end_phrase", pa.string()), ("num_words", pa.int64()), ("relation", pa.string())])
    )
    table = pa.table(
        {
            "key": pa.array([1001, 1002]),
            "prompt": ["End your reply with 'Over and out'.", "Answer in fewer than 5 words."],
            "instruction_id_list": [["startend:end_checker"], ["length_constraints:number_words"]],
            "kwargs": pa.array(
                [
                    [{"end_phrase": "Over and out", "num_words": None, "relation": None}],
                    [{"end_phrase": None, "num_words": 5, "relation": "less than"}],
                ],
                type=kwargs_type,
            ),
            "audio": pa.array(audio, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        }
    )
    pq.write_table(table, path)


def test_export_keeps_fields_and_decodes_audio(tmp_path):
    (a, wav_a), (b, _) = wav_bytes(440.0), wav_bytes(220.0, fmt="FLAC")
    ifeval_parquet(
        tmp_path / "test-00000.parquet", [{"bytes": a, "path": "1001.wav"}, {"bytes": b, "path": "1002.flac"}]
    )
    main(["--out", str(tmp_path / "out"), "--name", "ifeval", str(tmp_path / "test-00000.parquet")])
    rows = [json.loads(line) for line in (tmp_path / "out" / "ifeval.jsonl").read_text().splitlines()]
    assert rows[0]["key"] == 1001 and rows[0]["audio"] == "audio/ifeval/000000.wav"
    assert rows[1]["kwargs"] == [{"end_phrase": None, "num_words": 5, "relation": "less than"}]
    got, sr = read_wav(tmp_path / "out" / rows[0]["audio"])
    assert sr == 16000 and np.allclose(got, wav_a, atol=1e-4)
    items = load_benchmark("voicebench", tmp_path / "out" / "ifeval.jsonl", "ifeval", subset="ifeval")
    assert [it.row_id for it in items] == ["1001", "1002"] and items[1].audio.name == "000001.wav"
    assert items[1].instructions == (("length_constraints:number_words", {"num_words": 5, "relation": "less than"}),)


def test_export_errors_name_the_file_and_row(tmp_path):
    ifeval_parquet(
        tmp_path / "bad.parquet",
        [{"bytes": wav_bytes(440.0)[0], "path": "a.wav"}, {"bytes": b"not audio", "path": "b.wav"}],
    )
    with pytest.raises(ExportError, match=r"bad.parquet: row 1: column 'audio' could not be decoded"):
        export_parquet([tmp_path / "bad.parquet"], tmp_path / "out", "ifeval")
    with pytest.raises(ExportError, match=r"no column 'speech'"):
        export_parquet([tmp_path / "bad.parquet"], tmp_path / "out", "ifeval", audio_column="speech")
