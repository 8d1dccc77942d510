"""Per-item results of an evaluation, written as JSONL beside the run's logs.

Why: two runs evaluated on the same items with the same sampling seed (BenchmarkCallback forks its RNG from a
fixed seed) can be compared item by item, and a paired difference cancels the items' own difficulty, which
dominates the spread of a mean over a few hundred items. The ablation turns them on for every run (its report pairs
runs by seed, from their logged means; these files hold the item-level detail behind them).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from wavalign.benchmarks.base import BenchmarkItem


@dataclass
class ItemResult:
    benchmark: str
    source: str  # "file:line" of the item: its id across runs
    category: str
    iq: float | None  # correctness averaged over the item's IQ samples; None where the suite gives none
    eq: float | None  # the EQ judge's score of the first reply; None when unreliable
    text: str  # the first reply's text
    transcript: str | None  # the ASR transcript of its speech, where speech-text WER is measured


class ItemLog:
    """Collects an evaluation's ItemResults and writes them (one process's share per file)."""

    def __init__(self) -> None:
        self.rows: list[ItemResult] = []

    def add(self, item: BenchmarkItem, iq: float | None, eq: float | None, text: str, transcript: str | None) -> None:
        self.rows.append(ItemResult(item.benchmark, item.source, item.category, iq, eq, text, transcript))

    def write(self, log_dir: str | os.PathLike, step: int, rank: int, world_size: int) -> Path:
        """<log_dir>/eval_items/step<step>.jsonl (with .rank<r> before .jsonl when several processes evaluate)."""
        suffix = f".rank{rank}" if world_size > 1 else ""
        path = Path(log_dir) / "eval_items" / f"step{step}{suffix}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            for row in self.rows:
                f.write(json.dumps(asdict(row)) + "\n")
        return path


def read_items(path: str | os.PathLike) -> list[dict]:
    """The rows of an eval_items file, naming the file and line of a broken one."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not a JSON line ({e.msg})") from None
    return out
