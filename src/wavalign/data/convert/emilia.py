"""amphion/Emilia (the Emilia-Dataset repository): speech in the wild, WebDataset tar shards <LANG>/<LANG>-B??????.tar.

Each sample is two members sharing a key, <key>.mp3 (the utterance) and <key>.json with id, wav, text, duration,
speaker, language, dnsmos: the fields the dataset viewer lists for these shards (huggingface.co/datasets/
amphion/Emilia-Dataset) and the dataset card's description. Emilia is single-speaker speech, not dialogue, so each
utterance becomes a "repeat after me" example: the user says "Repeat after me:" followed by the utterance, and the
demonstration is its transcript spoken in the same recording (reference_answer: the transcript).

The shards are read with the standard library's tarfile, streamed member by member: `datasets`' webdataset loader
cannot pass MP3 members through without torchcodec, which this package does not install.
"""

from __future__ import annotations

import glob
import io
import json
import tarfile
from pathlib import Path
from typing import Any, Iterator

from wavalign.data.convert.common import ConvertError, Turn, decode_audio, need

NAME = "emilia"
DATASET = "amphion/Emilia-Dataset"
CODES = None
COLUMNS = ("mp3", "json: id, text, speaker, language, duration, dnsmos")
AUDIO_EXTENSIONS = ("mp3", "wav", "flac")


def rows(spec: str) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """(where, base, {"__key__", <extension>: bytes, "json": dict}) per sample, shards in name order."""
    files = sorted(glob.glob(spec)) if glob.has_magic(spec) else [spec]
    if not files or not all(Path(f).is_file() for f in files):
        raise FileNotFoundError(f"{spec}: no tar shard {'matches' if glob.has_magic(spec) else 'there'}")
    for shard in files:
        try:
            with tarfile.open(shard, "r|*") as tar:
                sample: dict[str, Any] = {}
                for member in tar:
                    if not member.isfile():
                        continue
                    key, _, ext = Path(member.name).name.partition(".")
                    if sample and key != sample["__key__"]:
                        yield f"{shard}:{sample['__key__']}", Path(shard).parent, sample
                        sample = {}
                    sample["__key__"] = key
                    sample[ext] = tar.extractfile(member).read()  # type: ignore[union-attr]
                if sample:
                    yield f"{shard}:{sample['__key__']}", Path(shard).parent, sample
        except tarfile.TarError as e:
            raise ConvertError(f"{shard}: not a readable tar shard ({e})") from None


def convert(where: str, row: dict[str, Any], base: Path) -> Turn:
    try:
        meta = json.load(io.BytesIO(need(row, "json", where, bytes)))
    except json.JSONDecodeError as e:
        raise ConvertError(f"{where}: member 'json' is not valid JSON ({e.msg})") from None
    audio_ext = next((e for e in AUDIO_EXTENSIONS if e in row), None)
    if audio_ext is None:
        raise ConvertError(f"{where}: no audio member ({'/'.join(AUDIO_EXTENSIONS)}); the sample has {sorted(row)}")
    audio = decode_audio(row[audio_ext], where, audio_ext, base)
    text = need(meta, "text", where + " json")
    return Turn(
        question_audio=audio,
        question_text=f"Repeat after me: {text}",
        answer_text=text,
        answer_audio=audio,
        user_prefix="Repeat after me: ",
        reference_answer=text,
        source_id=str(meta.get("id", row["__key__"])),
    )
