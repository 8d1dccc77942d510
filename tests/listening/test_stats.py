"""wavalign.listening.stats against values worked out by hand (in each test's docstring)."""

from __future__ import annotations

import math

import pytest

from wavalign.listening.stats import bootstrap_rate, cohen_kappa, fleiss_kappa, majority, mean_pairwise_cohen, sign_test


def test_sign_test_two_sided_binomial() -> None:
    """8 prompts won, 2 lost (1 even prompt drops out): p = 2 * (C(10,8) + C(10,9) + C(10,10)) / 2^10 = 112/1024.
    1 of 1: p = 1; 5 of 5: 2 / 32."""
    wins, losses = [2] * 8 + [0, 0, 1], [0] * 8 + [1, 3, 1]
    assert sign_test(wins, losses) == (8, 2, pytest.approx(112 / 1024))
    assert sign_test([1], [0]) == (1, 0, pytest.approx(1.0))
    assert sign_test([1] * 5, [0] * 5)[2] == pytest.approx(2 / 32)
    assert sign_test([1, 0], [1, 0]) == (0, 0, 1.0)


def test_bootstrap_over_prompts() -> None:
    """Two prompts, won 1/1 and 0/1: a resample is {1, 1} (rate 1, p = 1/4), {1, 2} (0.5, p = 1/2) or {2, 2}
    (0, p = 1/4), so the 2.5th and 97.5th percentiles are 0 and 1. Prompts that all agree give the point.
    Prompts weigh by their votes: 3/4 won and 0/1 -> rate 3/5; resamples give 1, 3/5 or 0 -> same bounds."""
    assert bootstrap_rate([1, 0], [1, 1]) == (0.0, 1.0)
    assert bootstrap_rate([2, 1, 3], [4, 2, 6]) == (0.5, 0.5)
    assert bootstrap_rate([1], [3]) == pytest.approx((1 / 3, 1 / 3))
    assert bootstrap_rate([3, 0], [4, 1]) == (0.0, 0.75)  # 3/4 when prompt one is drawn twice: the top resample
    low, high = bootstrap_rate([1, 0, 1, 1, 0, 1, 1, 1], [1] * 8)
    assert 0.25 <= low < 0.75 < high <= 1.0  # the point, 6/8, lies inside
    assert all(math.isnan(x) for x in bootstrap_rate([0], [0]))


def test_fleiss_kappa_by_hand() -> None:
    """Three trials, three raters: (a a a), (a a b), (b b tie). P_i = 6/6, 2/6, 2/6 -> mean 5/9; p_a = 5/9,
    p_tie = 1/9, p_b = 3/9 -> P_e = 35/81; kappa = (5/9 - 35/81) / (1 - 35/81) = 10/46 = 5/23.
    Perfect agreement on two labels: 1. Unequal rater counts: (a a) and (a b b): P = 1, 2/6 -> 2/3; p_a = 3/5,
    p_b = 2/5 -> P_e = 13/25; kappa = (2/3 - 13/25) / (12/25) = 11/36."""
    assert fleiss_kappa([["a", "a", "a"], ["a", "a", "b"], ["b", "b", "tie"]]) == pytest.approx(5 / 23)
    assert fleiss_kappa([["a", "a"], ["b", "b"], ["a", "a"]]) == pytest.approx(1.0)
    assert fleiss_kappa([["a", "a"], ["a", "b", "b"], ["b"]]) == pytest.approx(11 / 36)  # one-rater items ignored
    assert math.isnan(fleiss_kappa([["a", "a"], ["a", "a"]]))  # chance agreement 1: undefined
    assert math.isnan(fleiss_kappa([["a"]]))


def test_cohen_kappa_by_hand() -> None:
    """(a a b b) vs (a b b b): p_o = 3/4, p_e = 2/4 * 1/4 + 2/4 * 3/4 = 1/2 -> kappa = 1/2.
    (a tie b a) vs (b tie a a): p_o = 2/4; p_e = (2*2 + 1*1 + 1*1) / 16 = 6/16 -> kappa = (8/16 - 6/16) / (10/16) = 1/5."""
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx(0.5)
    assert cohen_kappa(["a", "tie", "b", "a"], ["b", "tie", "a", "a"]) == pytest.approx(0.2)
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))
    with pytest.raises(ValueError, match="equally long"):
        cohen_kappa(["a"], ["a", "b"])
    ratings = {
        "ann": {"t1": "a", "t2": "a", "t3": "b", "t4": "b"},
        "bob": {"t1": "a", "t2": "b", "t3": "b", "t4": "b"},
        "cy": {"t1": "a"},  # shares one trial only: left out
    }
    assert mean_pairwise_cohen(ratings) == (pytest.approx(0.5), 1)


def test_majority() -> None:
    assert majority(["a", "b", "a"]) == "a" and majority(["tie"]) == "tie"
    assert majority(["a", "b"]) is None and majority([]) is None
