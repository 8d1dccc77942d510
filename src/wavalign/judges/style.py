"""Style match judged from the waveform alone: F0 level, F0 spread and speaking rate against per-style profiles.

Profiles are fitted on the world's own demonstration audio (after the codec round trip, so the judge measures what
the policy can produce), and a reply scores 1 + 4 p(requested style | its prosody) under per-style Gaussians.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from wavalign.judges.base import Judge, JudgeRequest, JudgeScore

FEATURES = ("f0_level_st", "f0_spread_st", "words_per_s")
MIN_STD = (1.0, 0.3, 0.2)  # floors, so a style seen with near-identical samples still has a usable width


def prosody(wav: np.ndarray, sample_rate: int, n_words: int) -> np.ndarray | None:
    """[median F0 in semitones re 100 Hz, std of voiced log-F0 in semitones, words per second]; None if unvoiced."""
    import pyworld

    x = np.asarray(wav, dtype=np.float64)
    if x.size < sample_rate // 20:
        return None
    f0, _ = pyworld.dio(x, sample_rate, frame_period=10.0)
    voiced = f0[f0 > 0]
    if voiced.size < 5:
        return None
    st = 12.0 * np.log2(voiced / 100.0)
    return np.array([float(np.median(st)), float(np.std(st)), n_words / (x.size / sample_rate)])


@dataclass
class StyleProfile:
    mean: list[float]
    std: list[float]


def fit_profiles(samples: Iterable[tuple[str, np.ndarray | None]]) -> dict[str, StyleProfile]:
    """(style, prosody vector) pairs -> a Gaussian profile per style."""
    by_style: dict[str, list[np.ndarray]] = {}
    for style, feats in samples:
        if feats is not None:
            by_style.setdefault(style, []).append(feats)
    out = {}
    for style, rows in by_style.items():
        a = np.stack(rows)
        out[style] = StyleProfile(a.mean(0).tolist(), np.maximum(a.std(0), MIN_STD).tolist())
    return out


def save_profiles(profiles: dict[str, StyleProfile], path: str | Path) -> None:
    Path(path).write_text(json.dumps({s: vars(p) for s, p in sorted(profiles.items())}, indent=2) + "\n")


def load_profiles(path: str | Path) -> dict[str, StyleProfile]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"style profiles {path} do not exist (the world's prepare step writes them)")
    try:
        raw = json.loads(path.read_text())
        return {s: StyleProfile(list(p["mean"]), list(p["std"])) for s, p in raw.items()}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a style profile file ({e})") from None


class StyleJudge(Judge):
    """Scores 1 + 4 p(requested style | prosody). A reply with no audio or no voicing scores 1 (it has no style);
    a request whose style has no profile is scored unreliable, at the fallback.

    Args:
        profiles_file: JSON file of per-style prosody profiles (mean and std of F0 level, F0 spread and speaking
            rate); the world's prepare step writes .cache/world/style_profiles.json.
        fallback_score: Score (1-5) of a request whose requested style has no profile, marked unreliable.
    """

    def __init__(self, profiles_file: str, fallback_score: float = 2.5) -> None:
        self.profiles_file = profiles_file
        self.profiles = load_profiles(profiles_file)
        self.fallback_score = fallback_score

    def probabilities(self, feats: np.ndarray) -> dict[str, float]:
        logp = {}
        for style, p in self.profiles.items():
            z = (feats - np.asarray(p.mean)) / np.asarray(p.std)
            logp[style] = float(-0.5 * (z**2).sum() - np.log(p.std).sum())
        top = max(logp.values())
        total = sum(math.exp(v - top) for v in logp.values())
        return {s: math.exp(v - top) / total for s, v in logp.items()}

    def score_one(self, req: JudgeRequest) -> JudgeScore:
        if req.style not in self.profiles:
            return JudgeScore(self.fallback_score, reliable=False)
        feats = None
        if req.reply_audio is not None:
            feats = prosody(req.reply_audio, req.sample_rate, max(1, len(req.reply_text.split())))
        if feats is None:
            return JudgeScore(1.0, parts={"style": 0.0})
        p = self.probabilities(feats)[req.style]
        return JudgeScore(1.0 + 4.0 * p, parts={"style": p})

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        return [self.score_one(r) for r in requests]
