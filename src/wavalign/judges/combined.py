"""Composite judges: a weighted sum of judges (the paper's split mode, 0.7 semantic + 0.3 acoustic), and a pool
that spreads any picklable judge's work over worker processes."""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from wavalign.judges.base import Judge, JudgeRequest, JudgeScore, clip_score


class WeightedJudge(Judge):
    """score = sum_k w_k s_k over the named judges; every sub-score is kept in parts as '<name>' and the judges'
    own parts as '<name>_<part>'. A score is reliable only when all its parts are.

    Args:
        judges: The judges to combine, at least one (e.g. a semantic and an acoustic judge).
        weights: One weight per judge, in order, each >= 0 and summing to 1 (the paper's split: 0.7, 0.3).
        names: One name per judge, in order: the keys of their scores in the logged parts (e.g. semantic, acoustic).
    """

    def __init__(self, judges: list[Judge], weights: list[float], names: list[str]) -> None:
        if not len(judges) == len(weights) == len(names) or not judges:
            raise ValueError("WeightedJudge needs as many weights and names as judges (at least one)")
        if abs(sum(weights) - 1.0) > 1e-6 or min(weights) < 0:
            raise ValueError(f"WeightedJudge weights must be >= 0 and sum to 1, got {weights}")
        self.judges, self.weights, self.names = judges, [float(w) for w in weights], names

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        per_judge = [j.score(requests) for j in self.judges]
        out = []
        for i in range(len(requests)):
            parts: dict[str, float] = {}
            total, reliable = 0.0, True
            for name, w, scores in zip(self.names, self.weights, per_judge):
                s = scores[i]
                total += w * s.score
                reliable &= s.reliable
                parts[name] = s.score
                parts.update({f"{name}_{k}": v for k, v in s.parts.items()})
            out.append(JudgeScore(clip_score(total), reliable, parts))
        return out

    def close(self) -> None:
        for j in self.judges:
            j.close()


class IntegerJudge(Judge):
    """Rounds another judge's scores to whole points (half up), as an LLM judge rating 1..5 would.

    Why: a continuous score (an ASR WER, an F0 distance) gives every group a non-zero reward spread, so a group of
    equally wrong replies still gets unit-scale GRPO advantages from measurement noise; whole points leave such a
    group tied (zero advantage, gate λ = 0: pure SFT anchor), as the paper's integer-scoring judge does. The
    unrounded score is kept in parts as 'raw'.

    Args:
        judge: The judge whose scores are rounded.
    """

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        out = []
        for s in self.judge.score(requests):
            whole = clip_score(math.floor(s.score + 0.5))
            out.append(JudgeScore(whole, s.reliable, {**s.parts, "raw": s.score}))
        return out

    def close(self) -> None:
        self.judge.close()


_WORKER_JUDGE: Judge | None = None


def _init_worker(judge: Judge) -> None:
    global _WORKER_JUDGE
    _WORKER_JUDGE = judge  # inherited through fork once per worker, not pickled per call


def _score_chunk(chunk: list[JudgeRequest]) -> list[JudgeScore]:
    assert _WORKER_JUDGE is not None
    return _WORKER_JUDGE.score(chunk)


class PooledJudge(Judge):
    """Runs `judge` over `workers` processes (fork), in order-preserving chunks; workers=0 scores in-process.

    Judging (codec decoding, ASR, pitch tracking) is CPU work in Python; processes sidestep the GIL.

    Args:
        judge: The judge to run in the workers; it must be picklable and is copied into each worker once.
        workers: Number of worker processes, >= 0; 0 scores in the training process (no pool). Raise it when
            judging is the slow part of a step and cores are free.
    """

    def __init__(self, judge: Judge, workers: int = 2) -> None:
        self.judge, self.workers = judge, workers
        self._pool: ProcessPoolExecutor | None = None

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        if self.workers <= 0 or len(requests) < 2:
            return self.judge.score(requests)
        if self._pool is None:
            ctx = multiprocessing.get_context("fork")
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.judge,)
            )
        n = len(requests)
        size = -(-n // self.workers)
        chunks = [list(requests[i : i + size]) for i in range(0, n, size)]
        results = self._pool.map(_score_chunk, chunks)
        return [s for part in results for s in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self.judge.close()
