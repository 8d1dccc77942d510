"""Where dialogue rows come from: a JSONL file, parquet files, a `save_to_disk` folder or a Hugging Face dataset.

    data.train_file: data/train.jsonl                 # JSONL, one row a line (errors name file:line)
    data.train_file: "data/shards/train-*.parquet"    # parquet file(s), a glob (errors name file:row N)
    data.train_file: data/converted_ds                # a folder written by Dataset.save_to_disk
    data.train_file: hub:org/name:config:split        # load_dataset(name, config, split=split); also a local folder

Rows hold the template's schema (`data.schema`) whatever the container. None of these is read whole: a JSONL file
keeps one byte offset per line (the row is parsed when asked for); parquet and Hub data are written once, batch by
batch, to an Arrow file in $WAVALIGN_DATA_CACHE (default ~/.cache/wavalign/data) that `datasets` memory-maps, as it
does a saved folder; so the memory a run holds does not grow with the number of rows. Paths in
rows are relative to the JSONL or parquet file's folder, the saved folder, or a local dataset folder (else to the
working folder). An Audio column is read as its stored path: embedded audio bytes are refused with the command
that writes them out as WAV files (`wavalign convert`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from wavalign.data.schema import DialogueExample, SchemaError, parse_row

HUB_PREFIX = "hub:"
Scanned = tuple[int, str, "dict[str, Any] | None", "str | None"]  # (index, where, row or None, problem or None)


class RowSource(ABC):
    """Random and sequential access to the rows of one dataset; `base` resolves the relative paths in them."""

    label: str
    base: Path

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def where(self, i: int) -> str:
        """Row i's place for error messages: "file:line" or "file:row N"."""

    @abstractmethod
    def row(self, i: int) -> dict[str, Any]:
        """Row i as a dict (fields that are None left out); a row that cannot be read raises SchemaError."""

    def scan(self) -> Iterator[Scanned]:
        """Every row in order, a broken one as a problem instead of an exception (check-data reports them all)."""
        for i in range(len(self)):
            try:
                yield i, self.where(i), self.row(i), None
            except SchemaError as e:
                yield i, self.where(i), None, str(e)


class JsonlSource(RowSource):
    """A JSONL file indexed by line offsets (16 bytes a row), each line parsed when its row is asked for."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: file does not exist")
        self.label, self.base = str(self.path), self.path.parent
        offsets, lines = [], []
        with self.path.open("rb") as f:
            pos = 0
            for lineno, raw in enumerate(f, start=1):
                if raw.strip():
                    offsets.append(pos)
                    lines.append(lineno)
                pos += len(raw)
        self.offsets, self.lines = np.asarray(offsets, dtype=np.int64), np.asarray(lines, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets)

    def where(self, i: int) -> str:
        return f"{self.path}:{int(self.lines[i])}"

    def row(self, i: int) -> dict[str, Any]:
        with self.path.open("rb") as f:
            f.seek(int(self.offsets[i]))
            return self._parse(f.readline(), self.where(i))

    def scan(self) -> Iterator[Scanned]:
        with self.path.open("rb") as f:  # one pass over the file, not a seek per row
            i = 0
            for raw in f:
                if not raw.strip():
                    continue
                where = self.where(i)
                try:
                    yield i, where, self._parse(raw, where), None
                except SchemaError as e:
                    yield i, where, None, str(e)
                i += 1

    @staticmethod
    def _parse(raw: bytes, where: str) -> dict[str, Any]:
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise SchemaError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except json.JSONDecodeError as e:
            raise SchemaError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise SchemaError(f"{where}: each line must be a JSON object")
        return row


class ArrowSource(RowSource):
    """A `datasets.Dataset` (memory-mapped Arrow). files: the parquet files it was read from, in order, with their
    row counts, so a row's place names its file."""

    def __init__(self, dataset: Any, label: str, base: Path, files: Sequence[tuple[str, int]] = ()) -> None:
        from datasets import Audio

        for key in [k for k, f in dataset.features.items() if isinstance(f, Audio)]:
            dataset = dataset.cast_column(key, Audio(decode=False))  # paths or bytes, never decoded here
        self.dataset = dataset
        self.label, self.base, self.files = label, base, list(files)
        self.starts = np.cumsum([0] + [n for _, n in self.files])

    def __len__(self) -> int:
        return len(self.dataset)

    def where(self, i: int) -> str:
        if self.files:
            k = int(np.searchsorted(self.starts, i, side="right")) - 1
            return f"{self.files[k][0]}:row {i - int(self.starts[k])}"
        return f"{self.label}:row {i}"

    def row(self, i: int) -> dict[str, Any]:
        return self._clean(self.dataset[int(i)], self.where(i))

    def scan(self) -> Iterator[Scanned]:
        i = 0
        for batch in self.dataset.iter(batch_size=1000):
            keys = list(batch)
            for values in zip(*(batch[k] for k in keys)):
                where = self.where(i)
                try:
                    yield i, where, self._clean(dict(zip(keys, values)), where), None
                except SchemaError as e:
                    yield i, where, None, str(e)
                i += 1

    @staticmethod
    def _clean(row: dict[str, Any], where: str) -> dict[str, Any]:
        out = {}
        for key, value in row.items():
            if value is None:
                continue
            if isinstance(value, dict) and set(value) <= {"bytes", "path"}:  # an Audio column, undecoded
                if value.get("bytes"):
                    raise SchemaError(
                        f"{where}: field '{key}' holds embedded audio bytes; write them out as WAV files first "
                        "(`wavalign convert` or `wavalign export-benchmark`)"
                    )
                value = value.get("path")
            out[key] = value
        return out


def _quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def cache_dir() -> Path:
    """Where converted Arrow files are kept: $WAVALIGN_DATA_CACHE, else ~/.cache/wavalign/data (read at call time)."""
    return Path(os.environ.get("WAVALIGN_DATA_CACHE") or Path.home() / ".cache" / "wavalign" / "data")


def _materialize(key: str, batches: Iterator[Any]) -> Any:
    """A memory-mapped `datasets.Dataset` over an Arrow file written batch by batch from `batches` (pyarrow tables
    or record batches), cached under `key`.

    Why not `Dataset.from_parquet` / `load_dataset`: their preparation held a whole parquet file in memory
    (datasets 5.2: 423 MiB of anonymous memory for 900,000 rows of 310 bytes), so a set larger than memory could
    not even be opened. Here only one batch is held at a time."""
    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import MemoryMappedTable

    path = cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.arrow"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        part, writer = path.with_suffix(f".part{os.getpid()}"), None
        with pa.OSFile(str(part), "wb") as sink:
            for batch in batches:
                if writer is None:
                    writer = pa.ipc.new_stream(sink, batch.schema)
                writer.write(batch)
            if writer is None:
                raise SchemaError(f"{key}: no rows")
            writer.close()
        part.replace(path)
        pa.default_memory_pool().release_unused()  # the batches' buffers, else kept by the allocator for reuse
    return Dataset(MemoryMappedTable.from_file(str(path)))


def _parquet(spec: str) -> ArrowSource:
    import pyarrow.parquet as pq

    files = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
    if not files or not all(Path(f).is_file() for f in files):
        raise FileNotFoundError(f"{spec}: no parquet file {'matches' if glob.has_magic(spec) else 'there'}")
    counts = [(f, pq.read_metadata(f).num_rows) for f in files]
    stamp = [(str(Path(f).resolve()), Path(f).stat().st_size, Path(f).stat().st_mtime_ns) for f in files]
    schema = pq.read_schema(files[0])

    def batches() -> Iterator[Any]:
        for f in files:
            got = pq.read_schema(f)
            if not got.equals(schema, check_metadata=False):
                raise SchemaError(f"{f}: its columns differ from {files[0]}'s ({got.names} vs {schema.names})")
            yield from pq.ParquetFile(f).iter_batches(batch_size=1000)

    dataset = _materialize(json.dumps(["parquet", stamp]), batches())
    return ArrowSource(dataset, spec, Path(files[0]).resolve().parent, counts)


def _saved(folder: Path) -> ArrowSource:
    from datasets import DatasetDict, load_from_disk

    loaded = load_from_disk(str(folder))  # already Arrow files: memory-mapped as they are
    if isinstance(loaded, DatasetDict):
        if len(loaded) != 1:
            raise SchemaError(f"{folder}: a DatasetDict with splits {list(loaded)}; name one folder, {folder}/<split>")
        loaded = next(iter(loaded.values()))
    return ArrowSource(loaded, str(folder), folder.resolve())


def _hub(spec: str) -> ArrowSource:
    """hub:NAME[:CONFIG[:SPLIT]]: `load_dataset(..., streaming=True)` (a Hub id, or a local folder of data files),
    written batch by batch to a memory-mapped Arrow file."""
    import pyarrow as pa
    from datasets import Audio, load_dataset

    name, config, split = (spec[len(HUB_PREFIX) :].split(":") + ["", ""])[:3]
    if not name:
        raise SchemaError(f"{spec}: give a dataset name, hub:NAME[:CONFIG[:SPLIT]]")
    try:
        stream = load_dataset(name, config or None, split=split or "train", streaming=True)
    except (FileNotFoundError, ValueError) as e:
        raise SchemaError(f"{spec}: cannot load {name!r} (config {config or None}, split {split or 'train'}): {e}")
    features = stream.features
    for key in [k for k, f in (features or {}).items() if isinstance(f, Audio)]:
        stream = stream.cast_column(key, Audio(decode=False))
    schema = stream.features.arrow_schema if stream.features else None
    batches = (pa.Table.from_pydict(b, schema=schema) for b in stream.iter(batch_size=1000))
    local = Path(name)
    key = json.dumps(["hub", spec, str(local.resolve()) if local.is_dir() else name])
    return ArrowSource(_materialize(key, batches), spec, local.resolve() if local.is_dir() else Path.cwd())


def open_source(spec: str | Path) -> RowSource:
    """The RowSource a `data.*_file` value names (module docstring); FileNotFoundError or SchemaError if none."""
    spec = str(spec)
    if spec.startswith(HUB_PREFIX):
        _quiet_datasets()
        return _hub(spec)
    path = Path(spec)
    if path.is_dir():
        if not any((path / n).is_file() for n in ("state.json", "dataset_dict.json")):
            raise SchemaError(
                f"{spec}: a folder, but not one written by Dataset.save_to_disk; for a folder of data files "
                f"use hub:{spec}"
            )
        _quiet_datasets()
        return _saved(path)
    if spec.endswith(".parquet") or glob.has_magic(spec):
        _quiet_datasets()
        return _parquet(spec)
    return JsonlSource(path)


class LazyExamples(Sequence[DialogueExample]):
    """The rows of a source as DialogueExamples, each parsed when it is used. indices: the rows to serve (those
    that passed the check), None for all of them."""

    def __init__(self, source: RowSource, indices: np.ndarray | None = None, need_target: bool = True) -> None:
        self.source, self.indices, self.need_target = source, indices, need_target

    def __len__(self) -> int:
        return len(self.source) if self.indices is None else len(self.indices)

    def _example(self, j: int) -> DialogueExample:
        return parse_row(self.source.row(j), self.source.base, self.source.where(j), self.need_target)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            chosen = np.arange(len(self))[i] if self.indices is None else self.indices[i]
            return LazyExamples(self.source, chosen, self.need_target)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._example(i if self.indices is None else int(self.indices[i]))

    def __iter__(self) -> Iterator[DialogueExample]:
        if self.indices is not None:
            yield from (self._example(int(j)) for j in self.indices)
            return
        for _, where, row, problem in self.source.scan():
            if problem is not None:
                raise SchemaError(problem)
            yield parse_row(row, self.source.base, where, self.need_target)


def iter_raw(spec: str | Path) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """(where, base folder, row) for every row of a source in its own layout, streamed once in order, nothing
    cached: what the converters read. Audio columns stay undecoded ({"bytes", "path"}); a JSONL line that is not a
    JSON object raises SchemaError naming it."""
    spec = str(spec)
    path = Path(spec)
    if spec.startswith(HUB_PREFIX) or path.is_dir():
        _quiet_datasets()
        if spec.startswith(HUB_PREFIX):
            from datasets import load_dataset

            name, config, split = (spec[len(HUB_PREFIX) :].split(":") + ["", ""])[:3]
            data, base = load_dataset(name, config or None, split=split or "train", streaming=True), Path(name)
        else:
            data, base = _saved(path).dataset, path
        from datasets import Audio

        for key in [k for k, f in (data.features or {}).items() if isinstance(f, Audio)]:
            data = data.cast_column(key, Audio(decode=False))
        base = base.resolve() if base.is_dir() else Path.cwd()
        for i, row in enumerate(data):
            yield f"{spec}:row {i}", base, row
        return
    if spec.endswith(".parquet") or glob.has_magic(spec):
        import pyarrow.parquet as pq

        files = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
        if not files or not all(Path(f).is_file() for f in files):
            raise FileNotFoundError(f"{spec}: no parquet file {'matches' if glob.has_magic(spec) else 'there'}")
        for f in files:
            i = 0
            for batch in pq.ParquetFile(f).iter_batches(batch_size=64):
                for row in batch.to_pylist():
                    yield f"{f}:row {i}", Path(f).resolve().parent, row
                    i += 1
        return
    source = JsonlSource(path)
    for _, where, row, problem in source.scan():
        if problem is not None:
            raise SchemaError(problem)
        yield where, source.base, row
