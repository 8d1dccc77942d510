"""The paper's reward-reliability figures, measured in the ablation's world on the warm start's own rollouts.

The paper argues for text-only preference optimisation with two figures: the semantic part of the judge's score
varies more within a group than the acoustic part (in-group variance 1.066 vs 0.387), and judges rank the G samples
of one prompt consistently on content (Spearman 0.38-0.70) but not on acoustics (0.09-0.51). Here, for the first
`n_prompts` validation questions, the warm start samples G replies each (the RL config's group size and training
sampling), and every reply is scored by the parts of the paper's split judge (configs/ablations/world_split_judge.yaml):

- semantic: AnswerJudge (the reply text ends with the right answer: 5, else 1), what the ablation's reward reads;
- content, listening: the same rule on the ASR transcript of the reply's decoded speech (a judge that hears the reply,
  as the paper's audio judges do);
- acoustic: 0.5 speech-text consistency (1 + 4 (1 - WER of the transcript against the reply text)) + 0.5 style match
  (StyleJudge), the split judge's acoustic part.

In-group variance: the mean over prompts of the population variance of a part's G scores (1-5 scale, as the paper).
Rank consistency: our judges are deterministic, so asking one again always agrees; the independent second judgement
is instead the same judge on a second decoding of the same reply (its decoded speech encoded and decoded again by the
world codec: the same reply, recorded again). Per prompt, Spearman's rho (average ranks for ties) between the G scores
of the two decodings; the mean over prompts where both rankings are defined (neither side constant), with that count.
The reading semantic judge sees only the text, which a second decoding does not change: its consistency is 1 by
construction and is not reported; the listening content judge is the paper's content comparison.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from wavalign.callbacks.consistency import spearman
from wavalign.world.loader import TrainedModule, load

ASPECTS = ("semantic", "content_listening", "acoustic")
ACOUSTIC_WEIGHTS = {"consistency": 0.5, "style": 0.5}  # the split judge's acoustic part (world_split_judge.yaml)
PAPER = {
    "variance": {"semantic": 1.066, "acoustic": 0.387},
    "spearman": {"content": "0.38-0.70", "acoustic": "0.09-0.51"},
}


def in_group_variance(scores: np.ndarray, group_size: int) -> float:
    """Mean over groups of the population variance (ddof 0) of each group's scores; rows grouped by prompt."""
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1 or group_size < 1 or x.size == 0 or x.size % group_size:
        raise ValueError(f"scores must be a non-empty 1-D array of whole groups of {group_size}, got shape {x.shape}")
    return float(x.reshape(-1, group_size).var(axis=1, ddof=0).mean())


def rank_consistency(first: np.ndarray, second: np.ndarray, group_size: int) -> tuple[float | None, int]:
    """(mean Spearman rho over groups where both judgements rank the group, number of such groups); (None, 0) if none."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or group_size < 1 or a.size % group_size:
        raise ValueError(f"two judgements of whole groups of {group_size} needed, got shapes {a.shape} and {b.shape}")
    rhos = [
        r
        for g in range(a.size // group_size)
        if (r := spearman(a[g * group_size : (g + 1) * group_size], b[g * group_size : (g + 1) * group_size]))
        is not None
    ]
    return (float(np.mean(rhos)), len(rhos)) if rhos else (None, 0)


class _MemoASR:
    """Transcribes each distinct waveform once (the consistency and the listening content judge hear the same one)."""

    def __init__(self, asr: Any) -> None:
        self.asr, self.cache = asr, {}

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> str:
        key = hashlib.sha1(
            np.ascontiguousarray(wav, dtype=np.float32).tobytes() + str(sample_rate).encode()
        ).hexdigest()
        if key not in self.cache:
            self.cache[key] = self.asr.transcribe(wav, sample_rate)
        return self.cache[key]


def score_parts(requests: list, asr: Any, style_judge: Any) -> dict[str, np.ndarray]:
    """Each aspect's 1-5 score of each request (requests carry reply_audio or codes + codec)."""
    from wavalign.audio.asr import word_error_rate
    from wavalign.judges.rules import ends_with_answer

    out: dict[str, list[float]] = {a: [] for a in ASPECTS}
    for req in requests:
        audio = req.reply_audio
        heard = asr.transcribe(audio, req.sample_rate) if audio is not None and len(audio) > 0 else ""
        right = bool(req.reference) and ends_with_answer(req.reply_text, req.reference)
        out["semantic"].append(5.0 if right else 1.0)
        out["content_listening"].append(5.0 if req.reference and ends_with_answer(heard, req.reference) else 1.0)
        spoken = audio is not None and len(audio) > 0  # no speech says nothing: consistency 1, as AsrConsistencyJudge
        consistency = 1.0 + 4.0 * (1.0 - min(1.0, word_error_rate(req.reply_text, heard))) if spoken else 1.0
        style = style_judge.score_one(req).score
        out["acoustic"].append(ACOUSTIC_WEIGHTS["consistency"] * consistency + ACOUSTIC_WEIGHTS["style"] * style)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def second_decoding(requests: list, codec: Any) -> list:
    """The same requests with each reply's speech recorded again: decoded, encoded and decoded by the codec."""
    import dataclasses

    out = []
    for req in requests:
        audio = req.reply_audio
        again = codec.decode(codec.encode(audio, req.sample_rate)) if audio is not None and len(audio) else audio
        out.append(dataclasses.replace(req, reply_codes=None, codec=None, reply_audio=again))
    return out


def measure(
    module: TrainedModule, bench_file: str, n_prompts: int, sentences_file: str, profiles_file: str, seed: int = 0
) -> dict[str, Any]:
    """Sample G replies to the first n_prompts items of a world benchmark file and compute both figures per aspect."""
    import torch

    from wavalign.audio.asr import TaskASR
    from wavalign.benchmarks import load_benchmark
    from wavalign.judges.style import StyleJudge
    from wavalign.step.scoring import build_requests

    if n_prompts < 1:
        raise ValueError(f"analysis: n_prompts must be at least 1, got {n_prompts}")
    if module.codec is None:
        raise ValueError("analysis: the module has no codec, so its replies' speech cannot be judged")
    items = load_benchmark("generic", bench_file, "world")[:n_prompts]
    examples = [it.as_example() for it in items]
    g = module.group_size
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        rollouts = module.policy.rollout(module.prompts(examples), g, module.sampling)
        replies = module.policy.decode(rollouts)
    first = build_requests(examples, replies, g, module.codec)
    lines = [s.strip() for s in Path(sentences_file).read_text(encoding="utf-8").splitlines() if s.strip()]
    asr, style = _MemoASR(TaskASR(lines)), StyleJudge(profiles_file)
    one = score_parts(first, asr, style)
    two = score_parts(second_decoding(first, module.codec), asr, style)
    result: dict[str, Any] = {"prompts": len(items), "group_size": g, "seed": seed, "bench": bench_file, "aspects": {}}
    for aspect in ASPECTS:
        rho, n = rank_consistency(one[aspect], two[aspect], g)
        result["aspects"][aspect] = {
            "variance": in_group_variance(one[aspect], g),
            "mean": float(one[aspect].mean()),
            "spearman": rho,
            "ranked_groups": n,
        }
    return result


def measure_checkpoint(
    rl_yaml: str, checkpoint: str, world_dir: str, n_prompts: int, out: str | Path
) -> dict[str, Any]:
    """Load `checkpoint` into the RL base config's module, measure on the validation split, write `out` (JSON)."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"analysis: checkpoint {checkpoint} does not exist")
    module = load(rl_yaml, checkpoint).module  # the entry point's loader (wavalign.world.loader)
    w = Path(world_dir)
    result = measure(
        module, str(w / "val.bench.jsonl"), n_prompts, str(w / "sentences.txt"), str(w / "style_profiles.json")
    )
    result["checkpoint"] = checkpoint
    path = Path(out)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return result


def format_markdown(result: dict[str, Any]) -> list[str]:
    """The report's analysis table: one line per aspect, the paper's figure beside ours."""
    a = result["aspects"]
    label = {
        "semantic": "semantic (rule judge on the reply text; the reward)",
        "content_listening": "content, listening (rule judge on the ASR transcript)",
        "acoustic": "acoustic (0.5 speech-text consistency + 0.5 style)",
    }
    paper_var = {"semantic": "1.066", "content_listening": "1.066", "acoustic": "0.387"}
    paper_rho = {
        "semantic": "-",
        "content_listening": PAPER["spearman"]["content"],
        "acoustic": PAPER["spearman"]["acoustic"],
    }
    lines = [
        "| aspect | mean score | in-group variance | paper | rank consistency (Spearman) | groups ranked | paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for aspect in ASPECTS:
        s = a[aspect]
        rho = (
            "- (1 by construction: the text is the same)"
            if aspect == "semantic"
            else ("-" if s["spearman"] is None else f"{s['spearman']:.2f}")
        )
        ranked = "-" if aspect == "semantic" else f"{s['ranked_groups']} / {result['prompts']}"
        lines.append(
            f"| {label[aspect]} | {s['mean']:.2f} | {s['variance']:.3f} | {paper_var[aspect]} | {rho} | "
            f"{ranked} | {paper_rho[aspect]} |"
        )
    return lines
