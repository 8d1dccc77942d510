"""The judge figures of the ablation report: in-group population variance and per-prompt Spearman between two
judgements, checked against values worked out by hand (float64), and the aspects' scores of a reply.

The paper (WavAlign, arXiv 2604.14932, as summarised in the project's method.md) reports in-group variance of the
semantic vs acoustic judge score (1.066 vs 0.387) and judges' intra-prompt rank consistency as Spearman's rho over the
G samples of one prompt; Spearman with ties uses average ranks (scipy.stats.spearmanr's convention)."""

from __future__ import annotations

import numpy as np
import pytest

from wavalign.ablate.analysis import format_markdown, in_group_variance, rank_consistency, score_parts
from wavalign.judges.base import JudgeRequest, JudgeScore


def test_in_group_variance_is_the_mean_population_variance_by_hand() -> None:
    # group [1, 5, 5, 5]: mean 4, squared deviations 9 + 1 + 1 + 1 = 12, / 4 = 3.0; group [2, 2, 2, 2]: 0 -> mean 1.5
    assert in_group_variance(np.array([1, 5, 5, 5, 2, 2, 2, 2], dtype=np.float64), 4) == 1.5
    # G = 2: [1, 5] -> (2^2 + 2^2) / 2 = 4.0 (the largest variance of a 1..5 score)
    assert in_group_variance(np.array([1.0, 5.0]), 2) == 4.0
    with pytest.raises(ValueError, match="whole groups of 4"):
        in_group_variance(np.arange(6.0), 4)


def test_rank_consistency_by_hand_with_ties_and_constant_groups() -> None:
    first = np.array([1, 2, 3, 4, 5, 5, 1, 1, 3, 3, 3, 3], dtype=np.float64)
    second = np.array([1, 2, 4, 3, 1, 2, 3, 4, 1, 2, 3, 4], dtype=np.float64)
    # group 1: rank differences 0, 0, 1, -1 -> rho = 1 - 6 * 2 / (4 * (16 - 1)) = 0.8
    # group 2: average ranks [3.5, 3.5, 1.5, 1.5] vs [1, 2, 3, 4]: centred [1, 1, -1, -1] . [-1.5, -.5, .5, 1.5] = -4,
    #          norms sqrt(4 * 5) -> rho = -4 / sqrt(20) = -0.894427191
    # group 3: the first judgement is constant -> no ranking, left out
    rho, n = rank_consistency(first, second, 4)
    assert n == 2 and rho == pytest.approx((0.8 - 4 / np.sqrt(20)) / 2, abs=1e-12)
    assert rank_consistency(np.ones(4), np.arange(4.0), 4) == (None, 0)
    with pytest.raises(ValueError, match="two judgements"):
        rank_consistency(np.ones(4), np.ones(8), 4)


class _HeardAs:
    """An ASR that hears a fixed transcript for each waveform length (a real seam: anything with transcribe)."""

    def __init__(self, by_length: dict[int, str]) -> None:
        self.by_length, self.calls = by_length, 0

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> str:
        self.calls += 1
        return self.by_length[len(wav)]


class _StyleAt:
    def __init__(self, score: float) -> None:
        self.score = score

    def score_one(self, req: JudgeRequest) -> JudgeScore:
        return JudgeScore(self.score)


def test_aspect_scores_of_a_reply_by_hand() -> None:
    right = JudgeRequest(
        "what is three plus four",
        "three plus four is seven",
        reply_audio=np.zeros(100, np.float32),
        reference="seven",
        style="calm",
    )
    silent = JudgeRequest(
        "what is three plus four", "three plus four is seven", reply_audio=None, reference="seven", style="calm"
    )
    asr = _HeardAs({100: "three plus four is nine"})
    parts = score_parts([right, silent], asr, _StyleAt(3.0))
    # reply text ends with "seven": semantic 5; the transcript ends with "nine": listening content 1;
    # WER 1 substitution / 5 words = 0.2 -> consistency 1 + 4 * 0.8 = 4.2; acoustic 0.5 * 4.2 + 0.5 * 3.0 = 3.6
    # no speech: nothing heard (listening 1), consistency 1 -> acoustic 0.5 * 1 + 0.5 * 3.0 = 2.0
    assert parts["semantic"].tolist() == [5.0, 5.0]
    assert parts["content_listening"].tolist() == [1.0, 1.0]
    assert parts["acoustic"] == pytest.approx([3.6, 2.0], abs=1e-12)
    assert asr.calls == 1


def test_markdown_puts_the_papers_figures_beside_ours() -> None:
    result = {
        "prompts": 3,
        "group_size": 4,
        "aspects": {
            "semantic": {"mean": 1.5, "variance": 0.75, "spearman": None, "ranked_groups": 0},
            "content_listening": {"mean": 1.2, "variance": 0.5, "spearman": 0.25, "ranked_groups": 2},
            "acoustic": {"mean": 3.1, "variance": 0.125, "spearman": None, "ranked_groups": 0},
        },
    }
    lines = format_markdown(result)
    assert lines[2].startswith("| semantic") and "| 0.750 | 1.066 |" in lines[2]
    assert "| 0.25 | 2 / 3 | 0.38-0.70 |" in lines[3]
    assert "| 0.125 | 0.387 | - | 0 / 3 | 0.09-0.51 |" in lines[4]
