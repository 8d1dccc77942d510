"""What training needs beside the prepared world's audio and JSONL: the tokenizer's word list, the ASR judge's
sentences, and the style judge's prosody profiles (fitted on codec round trips of training replies, so the judge
measures speech the policy can actually emit). Cached against the world's content hash: a re-prepared world gets
fresh extras."""

from __future__ import annotations

import json
from pathlib import Path

from wavalign.runtime.progress import ProgressLines
from wavalign.runtime.worker_pool import fork_pool
from wavalign.world.prepare import world_splits
from wavalign.world.tasks import sentences, vocabulary

PROFILE_SAMPLES = 150
SFT_QUESTION_SHARE = 3  # of every 5 training questions (by qid), the SFT warm start sees 3; RL prompts cover all 5
EXTRAS_VERSION = 4  # bump when the extras' files change, so cached worlds get them rebuilt


def write_world_extras(world_dir: str | Path, profile_samples: int = PROFILE_SAMPLES) -> None:
    root = Path(world_dir)
    content = json.loads((root / "manifest.json").read_text())["content_hash"]
    marker = root / "extras.json"
    if marker.is_file() and json.loads(marker.read_text()) == _marker(content, profile_samples):
        return
    for name, lines in (("vocab.txt", vocabulary()), ("sentences.txt", sentences())):
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    codec = _tokenize_splits(root)
    _write_benchmarks(root)
    _write_sft_subset(root)
    profiles = root / "style_profiles.json"
    from wavalign.audio.io import read_wav
    from wavalign.judges.style import fit_profiles, prosody, save_profiles

    samples = []
    with (root / "train.jsonl").open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][:profile_samples]
    for row in rows:
        wav, sr = read_wav(root / row["sft_target_audio"])
        resynth = codec.decode(codec.encode(wav, sr))
        spoken = row.get("demo_style", row["style"])  # an imperfect teacher's wrong style is labelled as spoken
        samples.append((spoken, prosody(resynth, codec.sample_rate, len(row["sft_target_text"].split()))))
    tmp = profiles.with_suffix(".tmp")
    save_profiles(fit_profiles(samples), tmp)
    tmp.replace(profiles)
    marker.write_text(json.dumps(_marker(content, profile_samples)) + "\n")
    print(f"world: fitted style profiles on {len(samples)} codec round trips -> {profiles}", flush=True)


def _marker(content: str, profile_samples: int) -> dict:
    return {"content_hash": content, "profile_samples": profile_samples, "version": EXTRAS_VERSION}


def _write_sft_subset(root: Path) -> None:
    """train_sft.codes.jsonl: the training examples of 3 in 5 training questions. The warm start learns from these;
    RL then meets questions it never saw demonstrated, as when SFT data and RL prompts come from different sets."""
    lines = (root / "train.codes.jsonl").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if json.loads(line)["qid"] % 5 < SFT_QUESTION_SHARE]
    (root / "train_sft.codes.jsonl").write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    print(f"world: {len(kept)} of {len(lines)} training examples -> {root / 'train_sft.codes.jsonl'}", flush=True)


def _write_benchmarks(root: Path) -> None:
    """{split}.bench.jsonl: each split as a generic spoken-QA benchmark (wavalign.benchmarks.generic), so
    BenchmarkCallback measures IQ (answer accuracy) on the spoken questions exactly as on external benchmarks.
    answer_type 'final': world replies restate the question and end with the answer, so only the end counts.
    audio_codes: the question's codes from {split}.codes.jsonl (the world codec's), so an evaluation does not
    encode the same files again in every run."""
    for split in world_splits(root):
        rows = [json.loads(line) for line in (root / f"{split}.codes.jsonl").read_text(encoding="utf-8").splitlines()]
        bench = [
            {
                "question": r["question_text"],
                "audio": r["audios"][0],
                "answer": r["reference_answer"],
                "answer_type": "final",
                "style": r["style"],
                "category": r["family"],
                "audio_codes": r["audio_codes"][0],
            }
            for r in rows
        ]
        (root / f"{split}.bench.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bench), encoding="utf-8")


def _encode_file(args: tuple[str, str]) -> list[int]:
    from wavalign.audio.io import read_wav
    from wavalign.audio.world_codec import WorldCodec

    codebook, path = args
    codec = _CODECS.setdefault(codebook, WorldCodec(codebook))
    wav, sr = read_wav(path)
    return [int(c) for c in codec.encode(wav, sr)]


_CODECS: dict = {}


def _tokenize_splits(root: Path):
    """{split}.codes.jsonl: the reference rows plus their speech as codec codes, encoded once (2 processes)."""
    from wavalign.audio.world_codec import WorldCodec

    codebook = str(root / "codebook.npz")
    for split in world_splits(root):
        rows = [json.loads(line) for line in (root / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
        jobs = [(codebook, str(root / p)) for r in rows for p in [*r["audios"], r["sft_target_audio"]]]
        progress = ProgressLines(f"world: encoded {split}", len(jobs))
        encoded = []
        with fork_pool(2) as pool:
            for c in pool.imap(_encode_file, jobs, chunksize=16):  # in order, so progress can be told as it comes
                encoded.append(c)
                progress.advance()
        codes = iter(encoded)
        for r in rows:
            r["audio_codes"] = [next(codes) for _ in r["audios"]]
            r["sft_target_codes"] = next(codes)
        out = root / f"{split}.codes.jsonl"
        out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print(f"world: encoded {len(jobs)} {split} utterances -> {out}", flush=True)
    return WorldCodec(codebook)
