"""Would a cheaper pocketsphinx search transcribe the world's speech as accurately? The probe of the wall-time rule
(docs/testbed.md): demonstration replies, whose spoken text is known, go through the world codec and back (what the
judges hear of a reply) and are transcribed by TaskASR as it is and by each candidate's decoder options, the arms
interleaved utterance by utterance in one process. Prints per arm the time per utterance, the mean word error rate
against the spoken text, the paired difference from the current search with its 95 % interval, and the unchanged
transcripts.

    python scripts/asr_settings_probe.py --world .cache/ablate_9seed/world --splits val heard
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from wavalign.ablate.report import mean_ci  # noqa: E402
from wavalign.audio.asr import TaskASR, word_error_rate  # noqa: E402
from wavalign.audio.io import read_wav  # noqa: E402
from wavalign.audio.world_codec import WorldCodec  # noqa: E402

CANDIDATES = {
    "fwdflat off": {"fwdflat": False},
    "fwdflat off, bestpath off": {"fwdflat": False, "bestpath": False},
}


def demonstrations(world: Path, splits: list[str], limit: int | None) -> list[tuple[str, str]]:
    """(audio path, spoken text) of each split's demonstration replies, in file order."""
    out = []
    for split in splits:
        with open(world / f"{split}.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        out += [(str(world / r["sft_target_audio"]), r["sft_target_text"]) for r in rows][:limit]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default=".cache/ablate/world")
    ap.add_argument("--splits", nargs="+", default=["val", "heard"])
    ap.add_argument("--limit", type=int, default=None, help="demonstrations per split (default all)")
    args = ap.parse_args()
    world = Path(args.world)
    sentences = [s.strip() for s in (world / "sentences.txt").read_text().splitlines() if s.strip()]
    codec = WorldCodec.load(world / "codebook.npz")
    items = demonstrations(world, args.splits, args.limit)
    heard = []
    for path, _ in items:
        wav, sr = read_wav(path)
        heard.append(codec.decode(codec.encode(wav, sr)))
    arms = {"current": TaskASR(sentences, cache_dir=str(world / "asr_cache"))}
    arms |= {name: TaskASR(sentences, str(world / "asr_cache"), options) for name, options in CANDIDATES.items()}
    for asr in arms.values():
        asr.transcribe(heard[0], codec.sample_rate)  # build each decoder before the clock runs
    seconds = dict.fromkeys(arms, 0.0)
    transcripts: dict[str, list[str]] = {name: [] for name in arms}
    for wav in heard:
        for name, asr in arms.items():
            start = time.perf_counter()
            transcripts[name].append(asr.transcribe(wav, codec.sample_rate))
            seconds[name] += time.perf_counter() - start
    truth = [text for _, text in items]
    wer = {name: [word_error_rate(t, h) for t, h in zip(truth, out)] for name, out in transcripts.items()}
    n = len(items)
    print(f"{n} demonstrations ({', '.join(args.splits)}) of {world}, codec round trips")
    print("| search | ms per utterance | time vs current | WER vs spoken text | minus current [95 % CI] | unchanged |")
    print("|---|---|---|---|---|---|")
    for name in arms:
        mean, half = mean_ci([a - b for a, b in zip(wer[name], wer["current"])])
        same = sum(a == b for a, b in zip(transcripts[name], transcripts["current"]))
        print(
            f"| {name} | {seconds[name] / n * 1000:.1f} | {seconds[name] / seconds['current']:.3f} | "
            f"{sum(wer[name]) / n:.4f} | {mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}] | {same}/{n} |"
        )


if __name__ == "__main__":
    main()
