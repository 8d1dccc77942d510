"""Paired comparisons of ablation rows: each row minus the baseline row, seed by seed.

Why paired: a seed is a replicate that fixes the data order and the rollout sampling, and every run is evaluated on
the same items under the same sampling seed, so two rows run with one seed share much of their noise. The
difference per seed removes what they share; its spread over seeds is the noise left, and a Student-t interval
and test over seeds are what that spread supports. The minimum detectable difference (80 % power, two-sided 5 %)
uses the spread pooled over every row's differences, so it is one figure for the whole table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Paired:
    seeds: list[int]  # the seeds both rows ran
    diffs: list[float]  # row - baseline per seed
    mean: float
    half: float  # half-width of the two-sided 95 % interval (NaN with one seed)
    p: float  # two-sided one-sample t-test of mean difference 0 (NaN with one seed)


def paired(row: dict[int, float], base: dict[int, float]) -> Paired:
    """row and base: seed -> value. Only seeds both ran are paired."""
    from scipy import stats

    seeds = sorted(set(row) & set(base))
    if not seeds:
        raise ValueError(f"no seed in common to pair (row seeds {sorted(row)}, baseline seeds {sorted(base)})")
    diffs = [row[s] - base[s] for s in seeds]
    n, mean = len(diffs), sum(diffs) / len(diffs)
    if n < 2:
        return Paired(seeds, diffs, mean, float("nan"), float("nan"))
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    if sd == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return Paired(seeds, diffs, mean, half, p)


def pooled_sd(differences: list[list[float]]) -> tuple[float, int]:
    """The standard deviation of per-seed differences pooled over rows (each around its own mean), and its degrees
    of freedom; rows with one seed add nothing."""
    ss, df = 0.0, 0
    for diffs in differences:
        if len(diffs) < 2:
            continue
        m = sum(diffs) / len(diffs)
        ss += sum((d - m) ** 2 for d in diffs)
        df += len(diffs) - 1
    if df == 0:
        return float("nan"), 0
    return math.sqrt(ss / df), df


def min_detectable(sd: float, n: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest true mean difference a paired t-test over n seeds detects with this power: (t_{1-alpha/2}
    + t_{power}) x sd / sqrt(n), both quantiles with n - 1 degrees of freedom."""
    from scipy import stats

    if n < 2 or not math.isfinite(sd):
        return float("nan")
    t = stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)
    return float(t * sd / math.sqrt(n))


def seeds_needed(sd: float, target: float, power: float = 0.8, alpha: float = 0.05, most: int = 100) -> int | None:
    """The fewest seeds whose minimum detectable difference is at most `target` (None beyond `most`)."""
    for n in range(2, most + 1):
        if min_detectable(sd, n, power, alpha) <= target:
            return n
    return None
