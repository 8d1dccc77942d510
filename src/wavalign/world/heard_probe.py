"""Which new recordings of training questions does a world policy still hear? (how HEARD_VOICES was chosen)

The heard split is meant to measure "answers a question it was taught, from a new recording", not robustness to a
new voice. This probe records the heard split's questions in candidate (voice, pitch, rate) variants next to the
training recording itself, and reports per variant how much the question's codec codes changed (normalised edit
distance to the training recording's codes) and a checkpoint's accuracy and restatement rate on it
(`python -m wavalign.world probe-heard`; docs/ablation.md lists the values measured and the one chosen).
"""

from __future__ import annotations

import json
from pathlib import Path

from wavalign.audio.tts import ESPEAK_VOICE, STYLES, SpeakingStyle

_N = STYLES["neutral"]
TRAINING_VOICE: tuple[str, int, int] = (ESPEAK_VOICE, _N.pitch, _N.speed)  # how every training question is spoken
# (name, (espeak-ng voice, base pitch 0-99, words per minute)): the training recording, small rate and pitch changes
# of the training voice, and the other voices the first heard split used (docs/ablation.md: not understood at all).
CANDIDATES: tuple[tuple[str, tuple[str, int, int]], ...] = (
    ("training", TRAINING_VOICE),
    ("rate -5%", (ESPEAK_VOICE, _N.pitch, 166)),
    ("rate +5%", (ESPEAK_VOICE, _N.pitch, 184)),
    ("rate -10%", (ESPEAK_VOICE, _N.pitch, 158)),
    ("rate +10%", (ESPEAK_VOICE, _N.pitch, 193)),
    ("pitch -5", (ESPEAK_VOICE, _N.pitch - 5, _N.speed)),
    ("pitch +5", (ESPEAK_VOICE, _N.pitch + 5, _N.speed)),
    ("pitch -10", (ESPEAK_VOICE, _N.pitch - 10, _N.speed)),
    ("pitch +10", (ESPEAK_VOICE, _N.pitch + 10, _N.speed)),
    ("en-us+m3", ("en-us+m3", _N.pitch, _N.speed)),
)


def variant_style(name: str, pitch: int, speed: int) -> SpeakingStyle:
    """The neutral style (the training questions') at another base pitch and rate."""
    return SpeakingStyle(name, pitch=pitch, pitch_range=_N.pitch_range, speed=speed, amplitude=_N.amplitude)


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance between two code sequences (insertions, deletions, substitutions cost 1)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def code_change(a: list[int], b: list[int]) -> float:
    """Edit distance normalised by the longer sequence: 0 = the same codes, 1 = nothing in common."""
    if not a and not b:
        return 0.0
    return edit_distance(a, b) / max(len(a), len(b))


def write_variant_benches(
    world_dir: str | Path,
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    candidates: tuple[tuple[str, tuple[str, int, int]], ...] = CANDIDATES,
) -> dict[str, tuple[Path, float]]:
    """For each candidate: record the heard split's first `n` questions (teacher.heard_examples, the same the world's
    heard split draws) into out_dir/<k>/, write a generic benchmark file there, and measure the mean code change
    against the training recording. Returns name -> (bench file, mean code change)."""
    from wavalign.audio.io import write_wav
    from wavalign.audio.tts import synthesize
    from wavalign.audio.world_codec import WorldCodec
    from wavalign.world.tasks import split_questions
    from wavalign.world.teacher import heard_examples

    if n < 1:
        raise ValueError(f"heard probe: n must be at least 1, got {n}")
    codebook = Path(world_dir) / "codebook.npz"
    if not codebook.is_file():
        raise FileNotFoundError(f"heard probe: {codebook} does not exist (prepare the world first)")
    codec = WorldCodec(codebook)
    examples = heard_examples(split_questions(seed)["train"], n, seed)
    base: list[list[int]] = []
    out: dict[str, tuple[Path, float]] = {}
    for k, (name, (voice, pitch, speed)) in enumerate(candidates):
        where = Path(out_dir) / f"v{k}"
        (where / "audio").mkdir(parents=True, exist_ok=True)
        rows, codes = [], []
        for i, ex in enumerate(examples):
            wav, sr = synthesize(
                ex.question_text, variant_style(name, pitch, speed), sample_rate=codec.sample_rate, voice=voice
            )
            write_wav(where / "audio" / f"q{i:04d}.wav", wav, sr)
            codes.append([int(c) for c in codec.encode(wav, sr)])
            rows.append(
                {
                    "question": ex.question_text,
                    "audio": f"audio/q{i:04d}.wav",
                    "answer": ex.reference_answer,
                    "answer_type": "final",
                    "style": ex.style,
                    "category": ex.family,
                }
            )
        if not base:
            base = codes  # the first candidate is the reference (CANDIDATES: the training recording)
        bench = where / "bench.jsonl"
        bench.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        out[name] = (bench, sum(code_change(a, b) for a, b in zip(base, codes)) / len(codes))
    return out
