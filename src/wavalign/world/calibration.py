"""How hard are the training prompts for a warm start? The probe behind the testbed's calibration (docs/testbed.md).

RL learns from groups whose rewards differ: a prompt the warm start never solves, or always solves, gives a group
of equal binary rewards and no policy gradient. This samples `samples` replies per training prompt with the
training sampling and reports the per-prompt success histogram, the mean success per rollout, and the share of
groups of G replies whose rewards are all equal, under the exact-answer reward and under the graded judge.

`python -m wavalign.world calibrate --checkpoint CKPT [--config CFG] [--n 200] [--samples 8]`
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from wavalign.judges.base import JudgeRequest
from wavalign.judges.rules import ends_with_answer
from wavalign.world.graded_judge import GradedAnswerJudge


@dataclass
class Calibration:
    prompts: int
    samples: int  # replies per prompt
    group_size: int
    histogram: dict[int, int]  # right replies out of `samples` -> prompts
    success: float  # mean share of right replies (per rollout)
    solved_ever: float  # share of prompts with at least one right reply
    equal_binary: float  # share of groups (G consecutive replies of one prompt) with equal right/wrong rewards
    equal_graded: float  # the same under the graded judge's scores
    graded_mean: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def summarise(correct: Sequence[Sequence[bool]], graded: Sequence[Sequence[float]], group_size: int) -> Calibration:
    """correct / graded: per prompt, its replies' exact-answer results and graded scores (same length). Groups are
    consecutive runs of `group_size` replies of one prompt (a remainder is left out)."""
    if not correct or len(correct) != len(graded):
        raise ValueError(f"calibration: {len(correct)} prompts of results and {len(graded)} of scores")
    samples = len(correct[0])
    if samples < group_size or any(len(c) != samples or len(g) != samples for c, g in zip(correct, graded)):
        raise ValueError(f"calibration: every prompt needs the same number (>= {group_size}) of replies")
    groups = [(i, j) for i in range(len(correct)) for j in range(0, samples - group_size + 1, group_size)]

    def equal_share(values: Sequence[Sequence[Any]]) -> float:
        return sum(len(set(values[i][j : j + group_size])) == 1 for i, j in groups) / len(groups)

    counts = Counter(sum(c) for c in correct)
    return Calibration(
        prompts=len(correct),
        samples=samples,
        group_size=group_size,
        histogram={k: counts.get(k, 0) for k in range(samples + 1)},
        success=sum(sum(c) for c in correct) / (len(correct) * samples),
        solved_ever=sum(any(c) for c in correct) / len(correct),
        equal_binary=equal_share(correct),
        equal_graded=equal_share(graded),
        graded_mean=sum(sum(g) for g in graded) / (len(graded) * samples),
    )


def probe(module: Any, examples: Sequence[Any], samples: int, batch_size: int = 25, seed: int = 0) -> Calibration:
    """Sample `samples` replies per example with the module's training sampling and summarise them."""
    import torch

    judge = GradedAnswerJudge()
    correct: list[list[bool]] = []
    graded: list[list[float]] = []
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            rollouts = module.policy.rollout(module.prompts(chunk), samples, module.sampling)
            replies = module.policy.decode(rollouts)  # example i owns replies i*samples .. (i+1)*samples - 1
            for i, ex in enumerate(chunk):
                texts = [r.text for r in replies[i * samples : (i + 1) * samples]]
                requests = [JudgeRequest(ex.question_text, t, reference=ex.reference_answer) for t in texts]
                correct.append([ends_with_answer(t, ex.reference_answer) for t in texts])
                graded.append([s.score for s in judge.score(requests)])
    return summarise(correct, graded, module.group_size)


def format_report(c: Calibration) -> str:
    bars = "\n".join(
        f"  {k}/{c.samples} right: {n:4d} prompts {'#' * round(60 * n / c.prompts)}" for k, n in c.histogram.items()
    )
    return (
        f"{c.prompts} training prompts x {c.samples} replies (training sampling)\n{bars}\n"
        f"success per rollout {100 * c.success:.1f} %, prompts solved at least once {100 * c.solved_ever:.1f} %\n"
        f"groups of {c.group_size} with equal rewards: exact-answer {100 * c.equal_binary:.1f} %, "
        f"graded {100 * c.equal_graded:.1f} % (graded mean {c.graded_mean:.2f})"
    )
