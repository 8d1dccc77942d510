"""Can the world's EQ and WER see speech damage? Score the demonstrations and deliberately degraded copies of them.

The paper's full-token row collapses speech (EQ 2.55 -> 1.22). In this world that would only show if the style judge
(EQ) and the speech-text WER score broken speech clearly worse than the demonstrations. Each degradation keeps the
reply text and damages only its speech codes:
- `shuffled codes`: the demonstration's own codes in random order (right sounds, no order);
- `random codes`: uniform random codes of the same length (what an untrained speech head emits);
- `wrong style`: the same sentence spoken (and encoded) in another world style than the one requested.
All are scored exactly as BenchmarkCallback scores replies: EQ = mean StyleJudge score, WER = corpus speech-text
WER of the task ASR's transcript of the decoded speech against the reply text.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from wavalign.world.tasks import WORLD_STYLES

DEGRADATIONS = ("demonstration", "shuffled codes", "random codes", "wrong style")


@dataclass(frozen=True)
class SanityRow:
    reply: str
    eq: float  # mean style judge score, 1-5
    wer: float  # corpus speech-text WER
    n: int


def _degrade(kind: str, codes: np.ndarray, text: str, style: str, codec, rng: random.Random) -> np.ndarray:
    if kind == "demonstration":
        return codes
    if kind == "shuffled codes":
        out = codes.copy()
        np.random.default_rng(rng.randrange(2**32)).shuffle(out)
        return out
    if kind == "random codes":
        return np.asarray([rng.randrange(codec.num_codes) for _ in codes], dtype=np.int64)
    if kind == "wrong style":
        from wavalign.audio.tts import synthesize

        other = [s for s in WORLD_STYLES if s != style][rng.randrange(len(WORLD_STYLES) - 1)]
        wav, sr = synthesize(text, other, sample_rate=codec.sample_rate)
        return np.asarray(codec.encode(wav, sr), dtype=np.int64)
    raise ValueError(f"unknown degradation {kind!r}; known: {list(DEGRADATIONS)}")


def sanity_table(
    world_dir: str | Path, split: str = "val", n: int = 50, seed: int = 0, progress: Callable[[str], None] | None = None
) -> list[SanityRow]:
    """EQ and WER of the first `n` demonstrations of `<split>.codes.jsonl` and of each degradation of them."""
    from wavalign.audio.asr import TaskASR
    from wavalign.audio.world_codec import WorldCodec
    from wavalign.benchmarks.metrics import SpeechTextWER
    from wavalign.judges.base import JudgeRequest
    from wavalign.judges.style import StyleJudge

    root = Path(world_dir)
    path = root / f"{split}.codes.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: prepare the world with its extras first")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()][:n]
    if not rows:
        raise ValueError(f"{path} has no rows")
    codec = WorldCodec(root / "codebook.npz")
    judge = StyleJudge(str(root / "style_profiles.json"))
    asr = TaskASR([s for s in (root / "sentences.txt").read_text(encoding="utf-8").splitlines() if s.strip()])
    out = []
    for kind in DEGRADATIONS:
        rng = random.Random(f"wavalign-sanity-{seed}-{kind}")
        eq, wer = [], SpeechTextWER()
        for row in rows:
            text, style = row["sft_target_text"], row["style"]
            codes = _degrade(kind, np.asarray(row["sft_target_codes"], dtype=np.int64), text, style, codec, rng)
            audio = codec.decode(codes)
            req = JudgeRequest(
                question=row["question_text"],
                reply_text=text,
                reply_audio=audio,
                sample_rate=codec.sample_rate,
                style=style,
            )
            eq.append(judge.score_one(req).score)
            wer.update([text], [asr.transcribe(audio, codec.sample_rate)])
        out.append(SanityRow(kind, float(np.mean(eq)), float(wer.compute()), len(rows)))
        if progress is not None:
            progress(f"sanity: {kind:14s} EQ {out[-1].eq:.2f}  WER {out[-1].wer:.3f}  ({len(rows)} replies)")
    return out


def format_markdown(rows: list[SanityRow], split: str) -> str:
    lines = [
        f"| reply ({rows[0].n} {split} demonstrations) | EQ: style judge, 1-5 | speech-text WER |",
        "|---|---|---|",
    ]
    lines += [f"| {r.reply} | {r.eq:.2f} | {r.wer:.3f} |" for r in rows]
    return "\n".join(lines)
