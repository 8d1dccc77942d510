"""How much the built-in codec costs intelligibility: task-ASR WER on a split's original synthesised speech vs the
same speech after encode -> decode through the world's codebook. Questions and demonstration replies both count."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jiwer

from wavalign.audio.asr import TaskASR
from wavalign.audio.io import read_wav
from wavalign.audio.world_codec import WorldCodec
from wavalign.runtime.worker_pool import fork_pool
from wavalign.world.tasks import sentences as world_sentences


@dataclass(frozen=True)
class RoundTrip:
    utterances: int
    wer_original: float
    wer_roundtrip: float

    @property
    def gap(self) -> float:
        return self.wer_roundtrip - self.wer_original


_STATE: dict = {}


def _transcribe_pair(job: tuple[str, str, str]) -> tuple[str, str]:
    codebook, path, _ = job
    if "asr" not in _STATE:
        _STATE["asr"], _STATE["codec"] = TaskASR(world_sentences()), WorldCodec(codebook)
    asr, codec = _STATE["asr"], _STATE["codec"]
    wav, sr = read_wav(path)
    resynth = codec.decode(codec.encode(wav, sr))
    return asr.transcribe(wav, sr), asr.transcribe(resynth, codec.sample_rate)


def measure(world_dir: str | Path, split: str = "test", limit: int | None = None, workers: int = 2) -> RoundTrip:
    """Corpus WER (jiwer, all words pooled) of the original and the round-tripped audio of `split`."""
    root = Path(world_dir)
    jsonl = root / f"{split}.jsonl"
    if not jsonl.is_file():
        raise FileNotFoundError(f"{jsonl} does not exist: prepare the world first (python -m wavalign.world prepare)")
    jobs: dict[str, str] = {}  # audio path -> its text; questions are shared between styles, so count each once
    for line in jsonl.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        jobs.setdefault(str(root / row["audios"][0]), row["question_text"])
        jobs.setdefault(str(root / row["sft_target_audio"]), row["sft_target_text"])
    items = [(str(root / "codebook.npz"), p, t) for p, t in list(jobs.items())[:limit]]
    if workers > 1:
        with fork_pool(workers) as pool:
            heard = pool.map(_transcribe_pair, items, chunksize=8)
    else:
        heard = [_transcribe_pair(j) for j in items]
    refs = [" ".join(t.lower().split()) for _, _, t in items]
    return RoundTrip(
        utterances=len(items),
        wer_original=float(jiwer.wer(refs, [h[0] for h in heard])),
        wer_roundtrip=float(jiwer.wer(refs, [h[1] for h in heard])),
    )
