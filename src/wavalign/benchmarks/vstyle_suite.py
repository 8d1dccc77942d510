"""`VStyleSuite`: VStyle's spoken style instructions, scored only as VStyle's own evaluator scores them.

The figures are the official ones (`benchmarks.tally`): eval/vstyle/<category>/<sub> (the judge's mean per
ability), eval/vstyle/<category>, eval/vstyle/overall and eval/vstyle/coverage (the weight present). They are
VStyle's units, so the items add nothing to the pooled eval/iq, eval/eq (EQ and WER still appear under
eval/<name>/). All VStyle suites of a callback share one tally, so the overall spans them.
"""

from __future__ import annotations

from typing import Sequence

from wavalign.audio.io import read_wav
from wavalign.benchmarks.base import BenchmarkItem
from wavalign.benchmarks.official_judges import VStyleJudge
from wavalign.benchmarks.suite import Chunk, Suite
from wavalign.benchmarks.tally import OfficialTally
from wavalign.benchmarks.vstyle import load_vstyle


class VStyleSuite(Suite):
    """VStyle's metadata JSONL (`benchmarks.vstyle` documents the rows); each first reply is judged by its LALM.

    Args:
        name: names the suite's EQ and WER (eval/<name>/...); unique among the callback's suites, without '/'.
        path: the metadata JSONL (the Hugging Face release's, one per language).
        judge: VStyle's LALM judge (required: VStyle has no reference answers, every reply is judged).
        language: keep only rows of this language (e.g. "en"); rows that name none are kept.
        max_items: evaluate only the first N items (file order, so every evaluation sees the same subset).
    """

    def __init__(
        self,
        name: str,
        path: str,
        judge: VStyleJudge | None = None,
        language: str | None = None,
        max_items: int | None = None,
    ) -> None:
        super().__init__(name, path, max_items)
        self.judge, self.language = judge, language

    def load(self) -> list[BenchmarkItem]:
        items = load_vstyle(self.path, self.name, self.language, self.max_items)
        if self.judge is None:
            raise ValueError(
                f"benchmark suite {self.name!r}: VStyle is scored by its LALM judge; set the suite's "
                "judge (wavalign.benchmarks.official_judges.VStyleJudge)"
            )
        return items

    def new_tally(self, items: Sequence[BenchmarkItem], seed: int) -> OfficialTally:
        return OfficialTally(items, seed)

    def score(self, chunk: Chunk, tally: OfficialTally) -> list[float | None]:  # type: ignore[override]
        assert self.judge is not None  # load refused the suite without one
        jobs = []
        for item, req in zip(chunk.items, chunk.requests):
            instruction = read_wav(item.audio) if self.judge.send_instruction_audio else (None, 0)
            jobs.append(
                {
                    "ability": item.category,
                    "instruction": item.question,
                    "reply_audio": req.reply_audio,
                    "sample_rate": req.sample_rate,
                    "instruction_audio": instruction[0],
                    "instruction_rate": instruction[1],
                }
            )
        tally.add_vstyle(chunk.items, self.judge.scores(jobs))
        return [None] * len(chunk.items)  # VStyle's units, not our IQ

    def report(self, tally: OfficialTally) -> dict[str, float]:  # type: ignore[override]
        return tally.values()
