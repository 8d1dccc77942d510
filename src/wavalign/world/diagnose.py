"""Why a world policy gets a question wrong: did it hear the question (restatement), and what did it answer?

The world's replies restate the question before the answer ("the smaller of three and nine is three"), so a wrong
reply separates into mishearing (the restatement differs from the demonstration's) and answering wrongly after a right
restatement. For comparison questions the answer is also classed as the right option, the other option, or a number
outside the pair (a reply that neither compares nor copies). IQ alone cannot tell these apart; RL, SFT and world
changes move them differently.

`python -m wavalign.world diagnose --checkpoint CKPT` samples replies to a split's questions and prints the table.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

from wavalign.judges.rules import ends_with_answer
from wavalign.world.loader import TrainedModule
from wavalign.world.tasks import Question, words

ANSWER_KINDS = ("right", "other_option", "outside")


@dataclass(frozen=True)
class ReplyDiagnosis:
    family: str
    correct: bool  # the reply ends with the answer (the IQ rule)
    restated: bool  # the reply's words before the answer equal the demonstration's ("you said" alone for repeat,
    # whose answer is the heard numbers themselves, so there accuracy is the listening measure)
    answer_kind: str | None  # comparison questions only: one of ANSWER_KINDS


def diagnose(question: Question, reply_text: str) -> ReplyDiagnosis:
    """Classify one reply to one world question."""
    answer, demo, got = words(question.answer), words(question.reply), words(reply_text)
    correct = ends_with_answer(reply_text, question.answer)
    restated = got[: -len(answer)] == demo[: -len(answer)] if len(got) >= len(answer) else False
    kind = None
    if question.family == "comparison":
        options = set(words(question.text)[3:])
        options.discard("or")  # "which is bigger three or nine" -> {"three", "nine"}
        last = got[-1] if got else ""
        kind = "right" if correct else ("other_option" if last in options else "outside")
    return ReplyDiagnosis(question.family, correct, restated, kind)


def summarise(diagnoses: Iterable[ReplyDiagnosis]) -> dict[str, dict[str, float]]:
    """Per family (and 'all'): n, accuracy and restatement rate in %, and each comparison answer kind in %."""
    groups: dict[str, list[ReplyDiagnosis]] = defaultdict(list)
    for d in diagnoses:
        groups[d.family].append(d)
        groups["all"].append(d)
    out: dict[str, dict[str, float]] = {}
    for family, ds in groups.items():
        n = len(ds)
        row = {
            "n": float(n),
            "accuracy": 100 * sum(d.correct for d in ds) / n,
            "restated": 100 * sum(d.restated for d in ds) / n,
        }
        kinds = Counter(d.answer_kind for d in ds if d.answer_kind is not None)
        if family != "all" and kinds:
            row.update({k: 100 * kinds[k] / n for k in ANSWER_KINDS})
        out[family] = row
    return out


def format_table(summary: dict[str, dict[str, float]]) -> str:
    """A fixed-width table, one family per line, 'all' last."""
    cols = ["n", "accuracy", "restated", *ANSWER_KINDS]
    lines = [f"{'family':12s}" + "".join(f"{c:>14s}" for c in cols)]
    for family in sorted(summary, key=lambda f: (f == "all", f)):
        row = summary[family]
        cells = [f"{int(row['n']):14d}"] + [f"{row[c]:14.1f}" if c in row else f"{'-':>14s}" for c in cols[1:]]
        lines.append(f"{family:12s}" + "".join(cells))
    return "\n".join(lines)


def sample_diagnoses(
    module: TrainedModule,
    bench_file: str,
    samples: int = 4,
    temperature: float | None = None,
    batch_size: int = 50,
    seed: int = 0,
) -> list[ReplyDiagnosis]:
    """Sample `samples` replies per item of a world benchmark file (`<split>.bench.jsonl`) from a WavAlignModule,
    with its eval_sampling (at `temperature` if given), and diagnose each reply against its world question."""
    import dataclasses

    import torch

    from wavalign.benchmarks import load_benchmark
    from wavalign.world.tasks import all_questions

    by_text = {q.text: q for q in all_questions()}
    items = load_benchmark("generic", bench_file, "world")
    unknown = [it.source for it in items if it.question not in by_text]
    if unknown:
        raise ValueError(f"{unknown[0]}: question is not one of this world version's questions ({len(unknown)} such)")
    sampling = module.eval_sampling
    if temperature is not None:
        sampling = dataclasses.replace(sampling, temperature=temperature)
    out: list[ReplyDiagnosis] = []
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            rollouts = module.policy.rollout(module.prompts([it.as_example() for it in chunk]), samples, sampling)
            replies = module.policy.decode(rollouts)  # item i owns replies i*samples .. (i+1)*samples - 1
            out += [diagnose(by_text[chunk[j // samples].question], r.text) for j, r in enumerate(replies)]
    return out
