"""The suite protocol: what `BenchmarkCallback` asks of a benchmark, so the callback never needs to know which one.

The callback samples the replies (and keeps the figures every suite shares: EQ and WER per suite, the pooled
eval/iq, eval/eq, eval/wer); a suite owns the rest: reading its items, scoring a chunk of sampled replies with the
judges or rule tables it holds, and turning its counts into the figures it logs. Adding a benchmark is one class:

    class MySuite(Suite):
        def load(self) -> list[BenchmarkItem]: ...            # read the file, check the judge is there
        def score(self, chunk, tally) -> list[float | None]: ...  # per item: its IQ (0-1), or None
        # for figures of its own: new_tally (additive counts) and report (counts -> logged values)

Counts are additive (`Tally`) because evaluation is sharded: each process scores its share of the items and the
callback sums every tally's vector across processes before `report` reduces it. Suites of one class share one tally
per evaluation, so figures that span suites (VoiceBench's overall over nine subsets, one suite each) are reduced
once, over all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, Sequence

from wavalign.benchmarks.base import BenchmarkItem
from wavalign.judges.base import JudgeRequest
from wavalign.policy.base import Reply


@dataclass(frozen=True)
class Chunk:
    """The items of one suite in a sampled batch, with their replies.

    Args:
        items: the suite's items in this chunk, in evaluation order.
        samples: per item, its `iq_samples` sampled replies; the first is the one EQ, WER and official scorers read.
        requests: per item, the judge request of its first reply (the decoded reply speech and its sample rate).
    """

    items: Sequence[BenchmarkItem]
    samples: Sequence[Sequence[Reply]]
    requests: Sequence[JudgeRequest]

    @property
    def replies(self) -> list[Reply]:
        """The first reply of each item: the official evaluators score one reply per item."""
        return [s[0] for s in self.samples]


class Tally(Protocol):
    """A suite's additive counts for one evaluation: the same names in the same order on every process."""

    def vector(self) -> list[float]: ...

    def load(self, totals: Sequence[float]) -> None: ...


class Sums:
    """A `Tally` of named sums, for suites with figures of their own. Every name is declared up front (from all of
    the suite's items, not this process's share) so the vectors of all processes line up when they are summed.

    Args:
        names: every count the suite will add to.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.sums: dict[str, float] = dict.fromkeys(sorted(set(names)), 0.0)

    def add(self, name: str, value: float = 1.0) -> None:
        self.sums[name] += value  # an undeclared name is a KeyError: it would not line up across processes

    def vector(self) -> list[float]:
        return list(self.sums.values())

    def load(self, totals: Sequence[float]) -> None:
        self.sums = dict(zip(self.sums, map(float, totals)))


class Suite(ABC):
    """One benchmark file scored one way; YAML picks the class (class_path) and its arguments (init_args).

    Args:
        name: names the suite's figures (eval/<name>/...); unique among the callback's suites, without '/'.
        path: the benchmark file.
        max_items: evaluate only the first N items (file order, so every evaluation sees the same subset).
    """

    pooled: bool = False
    """Whether the suite's items join the pooled eval/iq, eval/eq, eval/wer (the generic suites'), rather than
    logging only under eval/<name>/ and in the suite's own figures."""

    def __init__(self, name: str, path: str, max_items: int | None = None) -> None:
        self.name, self.path, self.max_items = name, path, max_items

    @abstractmethod
    def load(self) -> list[BenchmarkItem]:
        """The suite's items, each with `benchmark` set to the suite's name (the loaders' `name` argument: it routes
        the item back to its suite). Called once at setup, so it should also check that everything scoring needs (a
        judge, rule tables) is there: a broken suite then fails the run before any training."""

    @abstractmethod
    def score(self, chunk: Chunk, tally: Tally) -> list[float | None]:
        """Score a chunk of this suite's items: add the suite's own counts to `tally` (this class's, from
        `new_tally`) and return per item its correctness for IQ (0-1), or None where it does not count toward IQ."""

    def new_tally(self, items: Sequence[BenchmarkItem], seed: int) -> Tally:
        """Fresh counts for one evaluation, shared by every suite of this class. items: all of their items (on
        every process); seed: the callback's, for any randomness in scoring (e.g. VoiceBench's guesses)."""
        return Sums()

    def report(self, tally: Tally) -> dict[str, float]:
        """The logged values (full names, eval/...) of every suite of this class, from their summed counts."""
        return {}

    def close(self) -> None:
        """Release the suite's judges' connections; called once at the end of a run."""
