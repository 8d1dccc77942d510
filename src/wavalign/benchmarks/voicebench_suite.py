"""`VoiceBenchSuite`: one VoiceBench subset file, scored only as VoiceBench's own evaluator scores it.

The figures are the official ones (`benchmarks.tally`): eval/voicebench/<subset> (with guess_rate, judge_failed
where they apply) and, once all nine leaderboard subsets run, eval/voicebench/overall. Because these are VoiceBench's
units and not ours, the items add nothing to the pooled eval/iq, eval/eq (EQ and WER still appear under
eval/<name>/). All VoiceBench suites of a callback share one tally, so several files of one subset (sd-qa's
regions) pool into one figure and the overall spans the suites.
"""

from __future__ import annotations

from typing import Sequence

from wavalign.benchmarks.base import BenchmarkItem
from wavalign.benchmarks.ifeval import needs_options
from wavalign.benchmarks.official_judges import VoiceBenchJudge
from wavalign.benchmarks.suite import Chunk, Suite
from wavalign.benchmarks.tally import LLM_SUBSETS, OfficialTally
from wavalign.benchmarks.voicebench import load_voicebench
from wavalign.benchmarks.voicebench_rules import RULE_SUBSETS, VoiceBenchRules


class VoiceBenchSuite(Suite):
    """One VoiceBench subset (a file exported by `wavalign.benchmarks.export`), scored by VoiceBench's rules.

    Args:
        name: names the suite's EQ and WER (eval/<name>/...); unique among the callback's suites, without '/'.
        path: the subset's JSONL file (`benchmarks.voicebench` documents the rows).
        subset: the VoiceBench subset (sd-qa, bbh, ifeval, ...): it picks the official scorer and what a row must
            hold.
        max_items: evaluate only the first N items (file order, so every evaluation sees the same subset).
        judge: VoiceBench's GPT judge; required for the subsets it scores (alpacaeval*, commoneval, wildvoice,
            sd-qa), unused by the rule-scored ones.
        voicebench_dir: a clone of github.com/MatthewCYM/VoiceBench (else $WAVALIGN_VOICEBENCH_DIR): bbh,
            openbookqa, mmsu, advbench and ifeval's constrained_response read its rule tables at setup, since
            they are VoiceBench's own text and not shipped here.
        skip_unsupported: ifeval only: drop the rows whose instructions are not checked here instead of refusing
            the file; the rest is then logged as ifeval_partial, left out of the overall as not comparable.
    """

    def __init__(
        self,
        name: str,
        path: str,
        subset: str,
        max_items: int | None = None,
        judge: VoiceBenchJudge | None = None,
        voicebench_dir: str | None = None,
        skip_unsupported: bool = False,
    ) -> None:
        super().__init__(name, path, max_items)
        self.subset, self.judge, self.voicebench_dir = subset, judge, voicebench_dir
        self.skip_unsupported = skip_unsupported
        self.rules: VoiceBenchRules | None = None  # read at load, only when the subset's scorer needs them

    def load(self) -> list[BenchmarkItem]:
        items = load_voicebench(self.path, self.name, self.subset, self.max_items, self.skip_unsupported)
        if self.subset in LLM_SUBSETS and self.judge is None:
            raise ValueError(
                f"benchmark suite {self.name!r}: VoiceBench's {self.subset} is scored by an LLM judge; "
                "set the suite's judge (wavalign.benchmarks.official_judges.VoiceBenchJudge)"
            )
        needs_tables = self.subset in RULE_SUBSETS or any(needs_options(it.instructions) for it in items)
        if needs_tables and self.rules is None:
            self.rules = VoiceBenchRules.from_checkout(
                self.voicebench_dir, f"benchmark suite {self.name!r} (VoiceBench {self.subset})"
            )
        return items

    def new_tally(self, items: Sequence[BenchmarkItem], seed: int) -> OfficialTally:
        return OfficialTally(items, seed)

    def score(self, chunk: Chunk, tally: OfficialTally) -> list[float | None]:  # type: ignore[override]
        texts = [r.text for r in chunk.replies]
        tally.add_voicebench(chunk.items, texts, self.judge, tally.guesses, self.rules)
        return [None] * len(chunk.items)  # VoiceBench's units, not our IQ

    def report(self, tally: OfficialTally) -> dict[str, float]:  # type: ignore[override]
        return tally.values()
