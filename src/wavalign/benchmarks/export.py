"""Export a benchmark's published parquet files (audio embedded, as downloaded from the Hugging Face hub) to the
JSONL + WAV layout our loaders read.

    python -m wavalign.benchmarks.export --out data/voicebench --name bbh voicebench/bbh/test-*.parquet

writes data/voicebench/bbh.jsonl, one row a line with every column but the audio kept as it is (prompt, reference,
id, key, instruction_id_list, kwargs, ...), and the audio decoded to data/voicebench/audio/bbh/<row>.wav (16-bit PCM,
the file's own sample rate), named in the row's audio field relative to the JSONL file. A `datasets` Audio column
is stored in parquet as {"bytes", "path"}; a row whose audio cannot be decoded is an error naming file and row.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import soundfile as sf


class ExportError(ValueError):
    pass


def _audio_bytes(value: Any, where: str, column: str) -> bytes:
    if isinstance(value, dict):
        value = value.get("bytes")
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise ExportError(f"{where}: column '{column}' holds no embedded audio bytes")
    return bytes(value)


def _jsonable(value: Any, where: str, column: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ExportError(f"{where}: column '{column}' holds {value}, which JSON cannot carry")
    if isinstance(value, (bytes, bytearray)):
        raise ExportError(f"{where}: column '{column}' holds bytes; only the audio column may")
    if isinstance(value, dict):
        return {k: _jsonable(v, where, column) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where, column) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ExportError(f"{where}: column '{column}' holds a {type(value).__name__}, which JSON cannot carry")


def export_parquet(
    files: Sequence[str | Path], out_dir: str | Path, name: str, audio_column: str = "audio", audio_field: str = "audio"
) -> Path:
    """Rows of `files` (in order) -> <out_dir>/<name>.jsonl + <out_dir>/audio/<name>/*.wav; returns the JSONL path.
    audio_field: the JSONL key for the WAV path ("audio" for VoiceBench and VStyle)."""
    import pyarrow.parquet as pq

    if not files:
        raise ExportError("no parquet files given")
    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio" / name
    audio_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / f"{name}.jsonl"
    n = 0
    with open(jsonl, "w", encoding="utf-8") as out:
        for file in files:
            table = pq.read_table(file)
            if audio_column not in table.column_names:
                raise ExportError(f"{file}: no column '{audio_column}' (columns: {table.column_names})")
            for i, row in enumerate(table.to_pylist()):
                where = f"{file}: row {i}"
                try:
                    data = _audio_bytes(row.pop(audio_column), where, audio_column)
                    wav, sr = sf.read(io.BytesIO(data), dtype="float32")
                except sf.LibsndfileError as e:
                    raise ExportError(f"{where}: column '{audio_column}' could not be decoded: {e}") from None
                rel = Path("audio") / name / f"{n:06d}.wav"
                sf.write(out_dir / rel, wav, sr, subtype="PCM_16")
                record = {k: _jsonable(v, where, k) for k, v in row.items()}
                if audio_field in record:
                    raise ExportError(f"{where}: column '{audio_field}' would be overwritten by the audio path")
                record[audio_field] = rel.as_posix()
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    if n == 0:
        raise ExportError(f"{list(map(str, files))}: no rows")
    return jsonl


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="parquet files, read in the order given")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--name", required=True, help="the JSONL's name, e.g. the VoiceBench subset")
    parser.add_argument("--audio-column", default="audio")
    args = parser.parse_args(argv)
    print(export_parquet(args.files, args.out, args.name, args.audio_column))


if __name__ == "__main__":
    main()
