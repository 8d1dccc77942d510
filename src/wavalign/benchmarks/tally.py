"""Scores VoiceBench and VStyle replies as their official evaluators do, and reduces them in the official units.

VoiceBench (evaluate.py + api_judge.py): per subset
- alpacaeval*, commoneval, wildvoice: mean LLM score on 1-5 (`VoiceBenchJudge.open_scores`);
- sd-qa: % of replies the LLM's majority vote calls correct (the leaderboard's "gpt" column; PEDANT is not run);
- openbookqa, mmsu: % correct letters, a random letter where no template matches (`guess_rate` logs how often);
- bbh: % correct, per task by the row's id, a random 0/1 where no phrase matches (also counted in `guess_rate`);
- ifeval: 100 x the mean of strict/loose x prompt/instruction accuracy;
- advbench: % of replies refused.
overall: the leaderboard's: the mean over its nine subsets (alpacaeval_full, commoneval, wildvoice, sd-qa, mmsu,
openbookqa, bbh, ifeval, advbench) with the 1-5 scores x 20; logged only when all nine are evaluated.

VStyle (lalm_eval/gemini_eval.py): the mean judge score per ability, and per category and overall the weighted mean
over the abilities present (weights: 0.25 a category, split evenly over its abilities, except
acoustic_attributes/composite_properties, which takes half of its category's), divided by the weight present.

Sums are kept by name so ranks can add them up (`keys`, `vector`, `load`) before `values` reduces them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

import numpy as np

from wavalign.benchmarks.base import BenchmarkItem
from wavalign.benchmarks.ifeval import follows
from wavalign.benchmarks.voicebench import OPEN_SUBSETS
from wavalign.benchmarks.voicebench_rules import RULE_SUBSETS, VoiceBenchRules, bbh_reference, bbh_task
from wavalign.benchmarks.vstyle import SUB_CATS

LEADERBOARD = ("alpacaeval_full", "commoneval", "wildvoice", "sd-qa", "mmsu", "openbookqa", "bbh", "ifeval", "advbench")
LLM_SUBSETS = OPEN_SUBSETS + ("sd-qa",)
IFEVAL = ("ifeval", "ifeval_partial")  # partial: rows with unsupported instructions skipped (not comparable)
IFEVAL_FIELDS = ("strict_prompt", "strict_instruction", "loose_prompt", "loose_instruction")


def vstyle_weights() -> dict[str, float]:
    weights = {}
    for cat, subs in SUB_CATS.items():
        for sub in subs:
            if cat == "acoustic_attributes":
                weights[f"{cat}/{sub}"] = 0.125 if sub == "composite_properties" else 0.125 / (len(subs) - 1)
            else:
                weights[f"{cat}/{sub}"] = 0.25 / len(subs)
    return weights


class OfficialTally:
    """Additive counts per VoiceBench subset and VStyle ability; `values()` turns them into the logged numbers.
    seed: `guesses`, the random answers of VoiceBench's scorers where no rule matches, repeatable per evaluation."""

    def __init__(self, items: Sequence[BenchmarkItem], seed: int = 0) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.guesses = random.Random(seed)
        for it in items:  # every rank registers the same names, so their vectors line up
            prefix = f"voicebench/{it.subset}" if it.kind == "voicebench" else f"vstyle/{it.category}"
            ifeval = it.subset in IFEVAL
            fields = ("n", "prompts", "instructions") + IFEVAL_FIELDS if ifeval else ("n", "score", "guess", "failed")
            for f in fields:
                self.sums[f"{prefix}:{f}"] += 0.0

    def keys(self) -> list[str]:
        return sorted(self.sums)

    def vector(self) -> list[float]:
        return [self.sums[k] for k in self.keys()]

    def load(self, totals: Sequence[float]) -> None:
        self.sums.update(zip(self.keys(), map(float, totals)))

    # ---- scoring ------------------------------------------------------------------------------------------------
    def add_voicebench(
        self,
        items: Sequence[BenchmarkItem],
        replies: Sequence[str],
        judge,
        rng: random.Random,
        rules: VoiceBenchRules | None = None,
    ) -> None:
        """Score one chunk of VoiceBench items (one reply each); judge: a `VoiceBenchJudge` for the LLM subsets;
        rules: the rule tables of a VoiceBench checkout, for bbh, openbookqa, mmsu, advbench and ifeval's
        constrained_response."""
        open_idx = [i for i, it in enumerate(items) if it.subset in OPEN_SUBSETS]
        qa_idx = [i for i, it in enumerate(items) if it.subset == "sd-qa"]
        if (open_idx or qa_idx) and judge is None:
            raise ValueError("VoiceBench subsets scored by an LLM need a voicebench_judge (VoiceBenchJudge)")
        if rules is None and any(it.subset in RULE_SUBSETS for it in items):
            raise ValueError(
                "VoiceBench bbh / openbookqa / mmsu / advbench need VoiceBench's rule tables "
                "(VoiceBenchRules.from_checkout)"
            )
        rated = judge.open_scores([(items[i].question, replies[i]) for i in open_idx]) if open_idx else []
        for i, s in zip(open_idx, rated):
            self._add(items[i], s)
        qa = [(items[i].question, items[i].references[0], replies[i]) for i in qa_idx]
        for i, ok in zip(qa_idx, judge.qa_correct(qa) if qa else []):
            self._add(items[i], None if ok is None else float(ok))
        for it, reply in zip(items, replies):
            if it.subset in OPEN_SUBSETS or it.subset == "sd-qa":
                continue
            p = f"voicebench/{it.subset}"
            if it.subset in IFEVAL:
                options = None if rules is None else rules.constrained_options
                strict, loose = follows(reply, it.instructions, options)
                self.sums[p + ":n"] += 1
                self.sums[p + ":prompts"] += 1
                self.sums[p + ":instructions"] += len(strict)
                self.sums[p + ":strict_prompt"] += float(all(strict))
                self.sums[p + ":strict_instruction"] += sum(strict)
                self.sums[p + ":loose_prompt"] += float(all(loose))
                self.sums[p + ":loose_instruction"] += sum(loose)
                continue
            guessed = False
            if it.subset == "advbench":
                score = float(rules.refused(reply))  # type: ignore[union-attr]
            elif it.subset == "bbh":
                answer = rules.bbh_answer(reply, bbh_task(it.row_id or ""))  # type: ignore[union-attr]
                if answer is None:
                    answer, guessed = rng.choice((0, 1)), True
                score = float(answer == bbh_reference(it.references[0]))
            else:  # openbookqa, mmsu
                letter = rules.mcq_answer(reply)  # type: ignore[union-attr]
                if letter is None:
                    letter, guessed = rng.choice("ABCD"), True
                score = float(letter == it.references[0])
            self._add(it, score, guessed)

    def add_vstyle(self, items: Sequence[BenchmarkItem], scores: Sequence[float | None]) -> None:
        for it, s in zip(items, scores):
            self._add(it, s)

    def _add(self, it: BenchmarkItem, score: float | None, guessed: bool = False) -> None:
        p = f"voicebench/{it.subset}" if it.kind == "voicebench" else f"vstyle/{it.category}"
        self.sums[p + ":n"] += 1
        if score is None:
            self.sums[p + ":failed"] += 1
            return
        self.sums[p + ":score"] += score
        self.sums[p + ":guess"] += float(guessed)

    # ---- reduction ----------------------------------------------------------------------------------------------
    def values(self) -> dict[str, float]:
        out: dict[str, float] = {}
        groups = sorted({k.split(":")[0] for k in self.sums})
        subsets = {}
        for g in groups:
            s = {k.split(":")[1]: v for k, v in self.sums.items() if k.startswith(g + ":")}
            if not s["n"]:
                continue
            if g.split("/", 1)[1] in IFEVAL:
                accs = [s[f] / s["prompts" if f.endswith("prompt") else "instructions"] for f in IFEVAL_FIELDS]
                out[f"eval/{g}"] = subsets[g.split("/", 1)[1]] = 100.0 * float(np.mean(accs))
                continue
            scored = s["n"] - s["failed"]
            if s["failed"]:
                out[f"eval/{g}/judge_failed"] = s["failed"] / s["n"]
            if not scored:
                continue
            mean = s["score"] / scored
            if g.startswith("voicebench/"):
                subset = g.split("/", 1)[1]
                value = mean if subset in OPEN_SUBSETS else 100.0 * mean
                out[f"eval/{g}"] = subsets[subset] = value
                if subset in ("bbh", "openbookqa", "mmsu"):
                    out[f"eval/{g}/guess_rate"] = 100.0 * s["guess"] / s["n"]
            else:
                out[f"eval/{g}"] = mean
        if all(name in subsets for name in LEADERBOARD):
            out["eval/voicebench/overall"] = leaderboard_overall(subsets)
        out.update(self._vstyle(out))
        return out

    @staticmethod
    def _vstyle(out: dict[str, float]) -> dict[str, float]:
        prefix = "eval/vstyle/"
        means = {k[len(prefix) :]: v for k, v in out.items() if k.startswith(prefix) and k.count("/") == 3}
        weights = vstyle_weights()
        result = {}
        for cat in SUB_CATS:
            present = {ab: m for ab, m in means.items() if ab.startswith(cat + "/")}
            if present:
                result[f"eval/vstyle/{cat}"] = weighted(present, weights)
        if means:
            result["eval/vstyle/overall"] = weighted(means, weights)
            result["eval/vstyle/coverage"] = sum(weights[ab] for ab in means)
        return result


def weighted(means: dict[str, float], weights: dict[str, float]) -> float:
    """sum(w x mean) / sum(w) over the abilities present (upstream's coverage-normalised weighted mean)."""
    used = sum(weights[ab] for ab in means)
    return sum(weights[ab] * m for ab, m in means.items()) / used


def leaderboard_overall(subsets: dict[str, float]) -> float:
    """VoiceBench's overall: the mean of the nine leaderboard subsets, 1-5 scores x 20."""
    return float(np.mean([subsets[s] * 20.0 if s in OPEN_SUBSETS else subsets[s] for s in LEADERBOARD]))
