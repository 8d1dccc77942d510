"""Benchmark loaders, each reading one benchmark's file layout into a list of `BenchmarkItem`s, and the suite protocol
`BenchmarkCallback` evaluates (`suite.Suite`; the classes: GenericSuite, VoiceBenchSuite, VStyleSuite, with the
official judges of VoiceBench and VStyle in official_judges.py).

    load_benchmark("voicebench", "data/sd-qa_usa.jsonl", name="sdqa", subset="sd-qa", max_items=200)
"""

from __future__ import annotations

from pathlib import Path

from wavalign.benchmarks.base import BenchmarkError, BenchmarkItem, correctness, extract_choice
from wavalign.benchmarks.generic import GenericSuite, load_generic
from wavalign.benchmarks.suite import Chunk, Suite, Sums
from wavalign.benchmarks.voicebench import load_voicebench
from wavalign.benchmarks.voicebench_suite import VoiceBenchSuite
from wavalign.benchmarks.vstyle import load_vstyle
from wavalign.benchmarks.vstyle_suite import VStyleSuite

KINDS = ("generic", "voicebench", "vstyle")

__all__ = [
    "KINDS",
    "BenchmarkError",
    "BenchmarkItem",
    "Chunk",
    "GenericSuite",
    "Suite",
    "Sums",
    "VStyleSuite",
    "VoiceBenchSuite",
    "correctness",
    "extract_choice",
    "load_benchmark",
    "load_generic",
    "load_voicebench",
    "load_vstyle",
]


def load_benchmark(
    kind: str,
    path: str | Path,
    name: str,
    max_items: int | None = None,
    subset: str | None = None,
    language: str | None = None,
    skip_unsupported: bool = False,
) -> list[BenchmarkItem]:
    """subset: the VoiceBench subset (picks its official scorer); language: VStyle rows to keep (e.g. "en");
    skip_unsupported: VoiceBench ifeval rows whose instructions are not checked here are dropped, not refused."""
    if subset is not None and kind != "voicebench":
        raise BenchmarkError(f"benchmark {name!r}: 'subset' only applies to kind 'voicebench', not {kind!r}")
    if skip_unsupported and kind != "voicebench":
        raise BenchmarkError(f"benchmark {name!r}: 'skip_unsupported' only applies to kind 'voicebench'")
    if language is not None and kind != "vstyle":
        raise BenchmarkError(f"benchmark {name!r}: 'language' only applies to kind 'vstyle', not {kind!r}")
    if kind == "generic":
        return load_generic(path, name, max_items)
    if kind == "voicebench":
        return load_voicebench(path, name, subset, max_items, skip_unsupported)
    if kind == "vstyle":
        return load_vstyle(path, name, language, max_items)
    raise BenchmarkError(f"benchmark {name!r}: kind must be one of {KINDS}, got {kind!r}")
