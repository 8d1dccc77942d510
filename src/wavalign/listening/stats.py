"""The statistics of a pairwise preference study, on plain per-prompt counts and label lists.

Prompts, not votes, are the unit of resampling and of the sign test: several raters (or criteria) judging one
prompt are not independent draws, so intervals over votes would be too narrow.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations
from typing import Hashable, Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import cohen_kappa_score

LABELS = ("a", "tie", "b")


def bootstrap_rate(hits: Sequence[int], totals: Sequence[int], n_resamples: int = 2000, seed: int = 0):
    """(low, high) percentile bootstrap 95 % interval of sum(hits) / sum(totals), resampling prompts (pairs of
    hits and totals) with replacement. One prompt, or prompts that all agree, give the point itself."""
    hits_a, totals_a = np.asarray(hits, dtype=float), np.asarray(totals, dtype=float)
    if totals_a.sum() == 0:
        return (math.nan, math.nan)
    rates = hits_a / np.where(totals_a > 0, totals_a, 1)
    if len(hits_a) < 2 or np.all(rates[totals_a > 0] == rates[totals_a > 0][0]):
        point = hits_a.sum() / totals_a.sum()
        return (float(point), float(point))  # every resample gives the same ratio
    result = stats.bootstrap(
        (hits_a, totals_a),
        lambda h, t, axis=-1: h.sum(axis=axis) / t.sum(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


def sign_test(wins: Sequence[int], losses: Sequence[int]) -> tuple[int, int, float]:
    """Two-sided sign test over prompts: (prompts won, prompts lost, p). A prompt counts for the side with more
    votes there; prompts with as many wins as losses drop out, as ties do in a sign test."""
    won = sum(w > lo for w, lo in zip(wins, losses))
    lost = sum(w < lo for w, lo in zip(wins, losses))
    p = stats.binomtest(won, won + lost, 0.5, alternative="two-sided").pvalue if won + lost else 1.0
    return won, lost, float(p)


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float:
    """Fleiss' kappa over items rated by two or more raters each (the number may differ per item: each item's
    agreement is averaged over its own rater pairs). Written out because scikit-learn has only Cohen's kappa and
    statsmodels (not a dependency) needs the same number of raters on every item; NaN when undefined."""
    rated = [list(labels) for labels in items if len(labels) >= 2]
    if not rated:
        return math.nan
    categories = sorted({x for labels in rated for x in labels}, key=str)
    counts = np.array([[labels.count(c) for c in categories] for labels in rated], dtype=float)
    n = counts.sum(axis=1)
    p_item = ((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))).mean()
    p_cat = counts.sum(axis=0) / n.sum()
    p_chance = float((p_cat**2).sum())
    return math.nan if p_chance == 1.0 else float((p_item - p_chance) / (1.0 - p_chance))


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels on the same items; NaN when chance agreement is total (both constant
    and equal), where kappa is undefined."""
    if len(first) != len(second) or not first:
        raise ValueError(f"Cohen's kappa needs two equally long, non-empty label lists ({len(first)}, {len(second)})")
    agreement_by_chance = (
        sum(Counter(first)[c] * Counter(second)[c] for c in set(first) | set(second)) / len(first) ** 2
    )
    if agreement_by_chance == 1.0:
        return math.nan
    return float(cohen_kappa_score(list(map(str, first)), list(map(str, second))))


def mean_pairwise_cohen(ratings: Mapping[str, Mapping[Hashable, Hashable]], min_shared: int = 2) -> tuple[float, int]:
    """Mean Cohen's kappa over rater pairs that labelled at least `min_shared` common items: (mean, pairs used);
    pairs whose kappa is undefined are left out."""
    kappas = []
    for r1, r2 in combinations(sorted(ratings), 2):
        shared = sorted(ratings[r1].keys() & ratings[r2].keys(), key=str)
        if len(shared) >= min_shared:
            k = cohen_kappa([ratings[r1][i] for i in shared], [ratings[r2][i] for i in shared])
            if not math.isnan(k):
                kappas.append(k)
    return (float(np.mean(kappas)) if kappas else math.nan, len(kappas))


def majority(labels: Sequence[Hashable]) -> Hashable | None:
    """The most common label, or None when two labels share the top count (no majority to compare with)."""
    top = Counter(labels).most_common()
    if not top or (len(top) > 1 and top[0][1] == top[1][1]):
        return None
    return top[0][0]
