import math

import pytest
import torch

from wavalign.gates import DynamicGate, FixedGate, RLOnly, SFTOnly


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_paper_example_gives_a_quarter():
    out = DynamicGate().update(torch.tensor([[4.0, 3.0, 5.0, 2.0]]))
    expected = 0.8 * sig(5 * (5 - 3)) * (1.25 / 4)
    assert out.lam_raw == pytest.approx(expected, abs=1e-12)
    assert out.lam_raw == pytest.approx(0.25, abs=1e-4)
    assert out.lam == out.lam_raw  # first step: no EMA history


def test_ema_over_three_steps_by_hand():
    gate = DynamicGate()
    batches = [
        torch.tensor([[4.0, 3.0, 5.0, 2.0]]),
        torch.tensor([[1.0, 5.0, 1.0, 5.0], [3.0, 3.0, 3.0, 3.0]]),  # two groups: mean over groups
        torch.tensor([[1.0, 2.0, 1.0, 2.0]]),  # no good sample
    ]
    raw1 = 0.8 * sig(10) * 1.25 / 4
    raw2 = (0.8 * sig(10) * 1.0 + 0.0) / 2  # var (1,5,1,5) = 4 -> v = 1; equal rewards -> 0
    raw3 = 0.8 * sig(5 * (2 - 3)) * 0.25 / 4
    lam1 = raw1
    lam2 = 0.1 * raw2 + 0.9 * lam1
    lam3 = 0.1 * raw3 + 0.9 * lam2
    got = [gate.update(b) for b in batches]
    assert [g.lam_raw for g in got] == pytest.approx([raw1, raw2, raw3], abs=1e-12)
    assert [g.lam for g in got] == pytest.approx([lam1, lam2, lam3], abs=1e-12)


def test_no_ema_and_cap():
    gate = DynamicGate(alpha=0.0, lambda_max=0.8)
    assert gate.update(torch.tensor([[1.0, 5.0, 1.0, 5.0]])).lam == pytest.approx(0.8 * sig(10))
    assert gate.update(torch.tensor([[3.0, 3.0, 3.0, 3.0]])).lam == 0.0


def test_unreliable_scores_are_uninformative():
    gate = DynamicGate()
    rewards = torch.tensor([[5.0, 1.0, 2.5, 2.5]])
    out = gate.group_raw(rewards, torch.tensor([[True, False, False, False]]))
    assert out.tolist() == [0.0]  # one reliable score: no variance to read
    out = gate.group_raw(rewards, torch.tensor([[True, True, False, False]]))
    assert out.item() == pytest.approx(0.8 * sig(10) * 4.0 / 4)


def test_state_dict_round_trip():
    a = DynamicGate()
    a.update(torch.tensor([[4.0, 3.0, 5.0, 2.0]]))
    b = DynamicGate()
    b.load_state_dict(a.state_dict())
    x = torch.tensor([[1.0, 5.0, 2.0, 4.0]])
    assert a.update(x) == b.update(x)


def test_fixed_rules():
    r = torch.tensor([[1.0, 5.0]])
    assert FixedGate(0.5).update(r).lam == 0.5
    assert SFTOnly().update(r).lam == 0.0
    assert RLOnly().update(r).lam == 1.0
    with pytest.raises(ValueError):
        FixedGate(1.5)
