"""Judge rank agreement: Spearman by hand, and the callback on re-scored rollouts of a real step."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
from test_geometry import stepped_module

from wavalign.callbacks.consistency import JudgeConsistencyCallback, agreement_by_part, rank_agreement, spearman
from wavalign.judges.base import Judge, JudgeScore

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to")


def test_spearman_by_hand():
    assert spearman(np.array([1.0, 2, 3]), np.array([10.0, 20, 30])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    # ties take average ranks: (1.5, 1.5, 3) vs (1, 2, 3) -> 1.5 / sqrt(1.5 * 2)
    assert spearman(np.array([1.0, 1, 2]), np.array([1.0, 2, 3])) == pytest.approx(1.5 / math.sqrt(3.0))
    assert spearman(np.array([2.0, 2, 2]), np.array([1.0, 2, 3])) is None


def test_rank_agreement_averages_over_groups_and_repeat_pairs():
    runs = np.array([[1, 2, 3, 1, 2, 3], [1, 2, 3, 3, 2, 1], [3, 2, 1, 5, 5, 5]], dtype=float)
    # group 0: pairs (0,1)=1, (0,2)=-1, (1,2)=-1; group 1: (0,1)=-1, the constant repeat's pairs are undefined
    assert rank_agreement(runs, 3) == pytest.approx((1 - 1 - 1 - 1) / 4)
    assert rank_agreement(np.full((2, 4), 3.0), 4) is None
    with pytest.raises(ValueError):
        rank_agreement(runs[:1], 3)


def test_parts_get_their_own_agreement():
    runs = [
        [JudgeScore(s, parts={"semantic": s, "acoustic": a}) for s, a in zip([1, 2, 3, 4], acoustic)]
        for acoustic in ([1, 2, 3, 4], [4, 3, 2, 1])
    ]
    out = agreement_by_part(runs, 4)
    assert out == {
        "judge/rank_agreement": pytest.approx(1.0),
        "judge/rank_agreement/acoustic": pytest.approx(-1.0),
        "judge/rank_agreement/semantic": pytest.approx(1.0),
    }


class HalfNoisyJudge(Judge):
    """Content part: reply length (stable); acoustic part: a fresh random draw each call (no stable ranking)."""

    def __init__(self) -> None:
        self.rng = random.Random(0)

    def score(self, requests):
        out = []
        for i, r in enumerate(requests):
            semantic = 1.0 + len(r.reply_text.split()) + 0.01 * i
            acoustic = self.rng.uniform(1, 5)
            out.append(
                JudgeScore(
                    min(5.0, 0.7 * semantic + 0.3 * acoustic), parts={"semantic": semantic, "acoustic": acoustic}
                )
            )
        return out


def test_callback_rescoring_a_real_step():
    module = stepped_module()
    batch = {"examples": [SimpleNamespace(question_text="q", reference_answer=None, style=None)] * 2}
    cb = JudgeConsistencyCallback(every_n_steps=1, repeats=6, judge=HalfNoisyJudge())
    cb.on_train_batch_end(SimpleNamespace(global_step=1, loggers=[]), module, None, batch, 0)
    assert cb.last["judge/rank_agreement/semantic"] == pytest.approx(1.0)
    assert abs(cb.last["judge/rank_agreement/acoustic"]) < 0.5  # 2 groups x 15 pairs of independent draws
    assert set(cb.last) == {"judge/rank_agreement", "judge/rank_agreement/semantic", "judge/rank_agreement/acoustic"}
