"""Judge intra-prompt consistency: does the judge rank the G samples of one prompt the same way when asked again?

The paper's case for text-only preference optimisation rests on this: judges rank a group's samples consistently on
content (Spearman 0.38-0.70) but not on acoustics (0.09-0.51). Every N steps this callback re-scores the step's
rollouts `repeats` times and logs the mean Spearman correlation between repeats, over repeat pairs and groups:
judge/rank_agreement for the score and judge/rank_agreement/<part> for each sub-score (semantic, acoustic, ...),
so a run measures its own judge's reliability per aspect.
"""

from __future__ import annotations

import itertools
import math

import lightning.pytorch as pl
import numpy as np
from scipy.stats import rankdata

from wavalign.callbacks.rollout_steps import rollouts_due
from wavalign.judges.base import Judge, JudgeScore
from wavalign.step.scoring import build_requests


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho with average ranks for ties; None when either side is constant (no ranking to agree on)."""
    ra, rb = rankdata(a), rankdata(b)
    da, db = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((da**2).sum() * (db**2).sum()))
    return None if denom == 0 else float((da * db).sum() / denom)


def rank_agreement(runs: np.ndarray, group_size: int) -> float | None:
    """runs: (repeats, rows) scores with rows grouped by prompt; the mean Spearman over groups and repeat pairs,
    leaving out undefined pairs; None when no pair is defined."""
    if runs.ndim != 2 or runs.shape[0] < 2 or runs.shape[1] % group_size:
        raise ValueError(f"runs must be (repeats >= 2, groups x {group_size}), got shape {runs.shape}")
    values = []
    for g in range(runs.shape[1] // group_size):
        block = runs[:, g * group_size : (g + 1) * group_size]
        for i, j in itertools.combinations(range(block.shape[0]), 2):
            rho = spearman(block[i], block[j])
            if rho is not None:
                values.append(rho)
    return float(np.mean(values)) if values else None


def agreement_by_part(runs: list[list[JudgeScore]], group_size: int) -> dict[str, float]:
    """judge/rank_agreement for the scores and judge/rank_agreement/<part> for sub-scores every score carries."""
    out: dict[str, float] = {}
    series = {"judge/rank_agreement": [[s.score for s in run] for run in runs]}
    common = set.intersection(*(set(s.parts) for run in runs for s in run)) if runs and runs[0] else set()
    for part in sorted(common):
        series[f"judge/rank_agreement/{part}"] = [[s.parts[part] for s in run] for run in runs]
    for name, values in series.items():
        rho = rank_agreement(np.asarray(values, dtype=np.float64), group_size)
        if rho is not None:
            out[name] = rho
    return out


class JudgeConsistencyCallback(pl.Callback):
    """Every `every_n_steps` steps (0, N, 2N, ...), score the step's rollouts `repeats` more times with `judge`
    (default: the module's judge). Costs repeats x (rows) judge calls, so keep N large for paid API judges.

    Args:
        every_n_steps: Measure every N optimiser steps (steps 0, N, 2N, ...), >= 1.
        repeats: How many times each rollout is scored again, >= 2; more gives a steadier agreement figure.
        judge: The judge whose consistency is measured; None uses the module's own judge.
    """

    def __init__(self, every_n_steps: int = 50, repeats: int = 3, judge: Judge | None = None) -> None:
        if every_n_steps < 1 or repeats < 2:
            raise ValueError(
                f"JudgeConsistencyCallback needs every_n_steps >= 1 and repeats >= 2, got {every_n_steps}, {repeats}"
            )
        self.every_n_steps, self.repeats, self.judge = every_n_steps, repeats, judge
        self.last: dict[str, float] = {}
        self._last_step = -1

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        due = rollouts_due(trainer, pl_module, self.every_n_steps, self._last_step)
        if due is None:
            return
        step, entry = due
        self._last_step = step
        requests = None if entry.judged is None else entry.judged.requests
        if requests is None:
            requests = build_requests(batch["examples"], entry.replies, pl_module.group_size, pl_module.codec)
        judge = self.judge or pl_module.judge
        runs = [judge.score(requests) for _ in range(self.repeats)]
        self.last = agreement_by_part(runs, pl_module.group_size)
        for logger in trainer.loggers:
            logger.log_metrics(self.last, step=step)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.judge is not None:
            self.judge.close()
