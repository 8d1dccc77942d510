"""Paired differences, pooled spread and the minimum detectable difference, by hand. With 2 degrees of freedom the
t distribution has a closed form, F(t) = 1/2 + t / (2 sqrt(t^2 + 2)), so quantiles and p-values are exact:
t_q = a sqrt(2 / (1 - a^2)) with a = 2q - 1 (t_0.975 = 4.30265, t_0.8 = 1.06066)."""

import math

import pytest

from wavalign.ablate.paired import min_detectable, paired, pooled_sd, seeds_needed

T975_DF2 = 0.95 * math.sqrt(2 / (1 - 0.95**2))
T80_DF2 = 0.6 * math.sqrt(2 / (1 - 0.6**2))


def test_three_seeds_by_hand():
    base = {0: 20.0, 1: 22.0, 2: 21.0}
    row = {0: 23.0, 1: 24.0, 2: 25.0, 7: 99.0}  # seed 7 has no baseline run: not paired
    p = paired(row, base)
    assert p.seeds == [0, 1, 2] and p.diffs == [3.0, 2.0, 4.0]
    assert p.mean == 3.0  # sd of (3, 2, 4) is 1
    assert p.half == pytest.approx(T975_DF2 / math.sqrt(3), rel=1e-9)
    t = 3.0 / (1 / math.sqrt(3))
    assert p.p == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-9)  # two-sided, df 2: 0.0351


def test_one_seed_has_no_interval_and_no_common_seed_is_an_error():
    p = paired({0: 5.0}, {0: 3.0, 1: 4.0})
    assert p.mean == 2.0 and math.isnan(p.half) and math.isnan(p.p)
    with pytest.raises(ValueError, match="no seed in common"):
        paired({1: 5.0}, {0: 3.0})


def test_pooled_sd_and_minimum_detectable_difference():
    # rows' differences around their own means: (3,2,4) -> ss 2, df 2; (1,1) -> ss 0, df 1; (5,) adds nothing
    sd, df = pooled_sd([[3.0, 2.0, 4.0], [1.0, 1.0], [5.0]])
    assert df == 3 and sd == pytest.approx(math.sqrt(2 / 3))
    assert min_detectable(1.0, 3) == pytest.approx((T975_DF2 + T80_DF2) / math.sqrt(3), rel=1e-9)  # 3.0965
    assert math.isnan(min_detectable(1.0, 1))
    assert seeds_needed(1.0, 3.1) == 3 and seeds_needed(1.0, 3.09) == 4  # 3 seeds detect 3.0965 and no less
    assert seeds_needed(1.0, 0.01, most=10) is None
