"""LUFFY by hand in float64: upstream ElliottYan/LUFFY mix_core_alg.py `compute_token_on_off_policy_loss`
(off_policy_reshape 'p_div_p_0.1': off-policy ratio = p / (p + 0.1) with no pi_old and no clip, loss -A ratio) run
with adv_estimator grpo over the whole group, the demonstration included (exp_scripts/train.sh, n_prefix = 1)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_policy
from loss_cases import hand_rows, rollouts_case
from wiring_toys import GROUP, keyed_score, make_module, no_grad, wiring_examples

from wavalign.gates.luffy import LUFFYGate, luffy_shaping
from wavalign.step.demonstrations import advantages_with_demos
from wavalign.step.losses import ADV_EPS, OffPolicyRows, policy_loss
from wavalign.step.rollouts import RolloutBuffer
from wavalign.step.scoring import ScoredGroups

F64 = torch.float64


def test_shaping_is_p_over_p_plus_gamma_and_its_gradient():
    """f(0.5) = 0.5 / 0.6; df/dlog p = p gamma / (p + gamma)^2 = 0.05 / 0.36 (no clip anywhere)."""
    logp = torch.tensor([math.log(0.5)], dtype=F64, requires_grad=True)
    f = luffy_shaping(logp, 0.1)
    assert float(f.detach()) == pytest.approx(0.5 / 0.6, rel=1e-15)
    f.backward()
    assert float(logp.grad) == pytest.approx(0.05 / 0.36, rel=1e-14)
    assert torch.equal(LUFFYGate().demo_ratio(logp.detach()), luffy_shaping(logp.detach(), 0.1))
    out = LUFFYGate().update(torch.zeros(2, 4))
    assert (out.lam, out.group_lam, LUFFYGate.demo_in_group) == (1.0, None, True)


def scored(rewards: list[list[float]]) -> ScoredGroups:
    r = torch.tensor(rewards, dtype=F64)
    return ScoredGroups(r, torch.ones_like(r, dtype=torch.bool), [], [])


def test_the_demonstrations_reward_counts_in_its_groups_statistics():
    """Group rollouts (1, 3) + demonstration 5: mean 3, population std sqrt(8/3); A = (r - 3) / (std + eps)."""
    roll, demo = advantages_with_demos(scored([[1.0, 3.0]]), scored([[5.0]]))
    std = math.sqrt(8.0 / 3.0)
    assert roll.tolist() == pytest.approx([-2.0 / (std + ADV_EPS), 0.0], rel=1e-14)
    assert demo.tolist() == pytest.approx([2.0 / (std + ADV_EPS)], rel=1e-14)
    roll, demo = advantages_with_demos(scored([[1.0, 3.0]]), scored([[5.0]]), scale=False)
    assert (roll.tolist(), demo.tolist()) == ([-2.0, 0.0], [2.0])


def test_off_policy_rows_are_averaged_with_the_rollout_rows():
    """rollouts_case's 4 rows plus 2 demonstration rows (3 positions) with advantages 0.8 and -0.4:
    L = (sum_i l_i + sum_b -A_b mean_t f(p_bt)) / 6, f(p) = p / (p + 0.1)."""
    c = rollouts_case()
    demo_adv = torch.tensor([0.8, -0.4], dtype=F64)
    demo_logp = c["demo_logp"].clone().requires_grad_(True)
    off = OffPolicyRows(luffy_shaping(demo_logp), demo_adv, c["demo_mask"])
    out = policy_loss(c["logp"], c["adv"], c["mask"], old_logp=c["old"], off_policy=off)
    f = lambda lp: math.exp(lp) / (math.exp(lp) + 0.1)  # noqa: E731
    d0 = -0.8 * (f(-0.2) + f(-0.4)) / 2
    d1 = 0.4 * (f(-1.0) + f(-0.6) + f(-0.9)) / 3
    assert float(out.loss.detach()) == pytest.approx((sum(hand_rows()) + d0 + d1) / 6, rel=1e-12)
    out.loss.backward()
    p = math.exp(-0.2)
    assert float(demo_logp.grad[0, 0]) == pytest.approx(-0.8 * p * 0.1 / (p + 0.1) ** 2 / 2 / 6, rel=1e-12)
    assert float(demo_logp.grad[0, 2]) == 0.0  # off the mask
    plain = policy_loss(c["logp"], c["adv"], c["mask"], old_logp=c["old"])
    assert float(out.clip_ratio) == float(plain.clip_ratio)  # the rollouts' statistic, not diluted


def test_the_module_step_puts_each_demonstration_in_its_group():
    """Demonstration rewards recomputed with the judge's own function on the target text; advantages over G + 1."""
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), rule=LUFFYGate())
    examples = wiring_examples()
    loss = module.training_step({"ids": [0, 1], "examples": examples}, 0)
    entry, policy = module.last_entry, module.policy
    replies = policy.decode(entry.rollouts)
    roll_r = torch.tensor(
        [keyed_score(examples[i // GROUP].question_text, r.text) for i, r in enumerate(replies)], dtype=F64
    )
    demo_r = torch.tensor(
        [keyed_score(ex.question_text, policy.decode(entry.demonstrations)[b].text) for b, ex in enumerate(examples)],
        dtype=F64,
    )
    rewards = torch.cat([roll_r.view(-1, GROUP), demo_r[:, None]], dim=1)
    mean = rewards.mean(1, keepdim=True)
    adv = (rewards - mean) / (rewards.std(1, unbiased=False, keepdim=True) + ADV_EPS)
    assert torch.allclose(entry.advantages.rollouts.double(), adv[:, :GROUP].flatten(), atol=1e-6)
    assert torch.allclose(entry.advantages.demonstrations.double(), adv[:, GROUP], atol=1e-6)
    # first update: rho = 1, so a rollout row's loss is -A (its text-token mean of a constant)
    rows = (-adv[:, :GROUP].flatten()).tolist()
    demo_logp = no_grad(lambda: policy.token_logprobs(entry.demonstrations)).double()
    demo_text = entry.demonstrations.masks.text.double()
    p = demo_logp.exp()
    demo_rows = [float(-adv[b, GROUP] * (p[b] / (p[b] + 0.1)) @ demo_text[b] / demo_text[b].sum()) for b in range(2)]
    assert float(loss.detach()) == pytest.approx((sum(rows) + sum(demo_rows)) / (len(rows) + 2), rel=1e-5)
    assert logged["gate/lambda"] == 1.0


def test_demonstration_advantages_survive_a_checkpoint_of_the_rollout_buffer():
    torch.manual_seed(0)
    module, _ = make_module(tiny_policy(seed=1), rule=LUFFYGate(), ppo_epochs=2)
    module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
    other = RolloutBuffer(2)
    other.load_state_dict(module.buffer.state_dict())
    assert torch.equal(other.entry.advantages.demonstrations, module.buffer.entry.advantages.demonstrations)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="gamma"):
        LUFFYGate(gamma=0.0)
    torch.manual_seed(0)
    module, _ = make_module(tiny_policy(seed=1), rule=LUFFYGate(), objective="dpo")
    with pytest.raises(ValueError, match="adds demonstrations to the group: it needs objective 'grpo'"):
        module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
