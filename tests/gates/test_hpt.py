"""HPT's per-prompt switch, by hand: upstream TsinghuaC3I/Unify-Post-Training, mix_trainer.py
`select_on_off_ada_balance` ('switch'): a prompt with at most switch_gate correct rollouts drops its rollouts and trains
SFT on its demonstration (here lambda_b = 0); any other prompt trains pure RL (lambda_b = 1)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_policy
from wiring_toys import GROUP, hand_rewards, make_module, no_grad, wiring_examples

from wavalign.callbacks.gating import GateCallback
from wavalign.gates.hpt import HPTGate
from wavalign.step.losses import policy_loss, sft_loss

REWARDS = torch.tensor([[1.0, 2.0, 3.0, 3.9], [5.0, 1.0, 1.0, 1.0], [4.0, 4.5, 1.0, 5.0]], dtype=torch.float64)


@pytest.mark.parametrize(
    ("switch_gate", "expected"),
    [(0, [0.0, 1.0, 1.0]), (1, [0.0, 0.0, 1.0]), (3, [0.0, 0.0, 0.0])],
)
def test_groups_with_at_most_switch_gate_correct_rollouts_get_sft(switch_gate, expected):
    """Correct = score >= 4: the groups have 0, 1 and 3 correct rollouts."""
    out = HPTGate(switch_gate=switch_gate, success_threshold=4.0).update(REWARDS)
    assert out.group_lam.tolist() == expected
    assert out.lam == pytest.approx(sum(expected) / 3) and out.lam_raw == out.lam


def test_an_unreliable_score_never_counts_as_correct():
    reliable = torch.ones(3, 4, dtype=torch.bool)
    reliable[1, 0] = False  # group 1's only correct score was a judge fallback
    out = HPTGate(switch_gate=0, success_threshold=4.0).update(REWARDS, reliable)
    assert out.group_lam.tolist() == [0.0, 0.0, 1.0]


def test_a_negative_switch_gate_is_refused():
    with pytest.raises(ValueError, match="switch_gate"):
        HPTGate(switch_gate=-1)


def test_the_module_trains_sft_on_unsolved_prompts_and_rl_on_the_others():
    """The step's loss, recomputed from the rewards the judge gave: L = (1/B) sum_b [lam_b L_PO,b + (1 - lam_b)
    L_SFT,b] with lam_b from HPT's rule applied by hand to the hand-recomputed rewards."""
    torch.manual_seed(0)
    rule = HPTGate(switch_gate=1, success_threshold=4.0)
    module, logged = make_module(tiny_policy(seed=1), rule=rule)
    batch = {"ids": [0, 1], "examples": wiring_examples()}
    loss = module.training_step(batch, 0)
    entry = module.last_entry
    r = hand_rewards(module, batch["examples"])
    lam = [0.0 if int((row >= 4.0).sum()) <= 1 else 1.0 for row in r]
    assert entry.plan.group_lam.tolist() == lam and sorted(lam) == [0.0, 1.0]  # this seed gives one group of each
    logp = no_grad(lambda: module.policy.token_logprobs(entry.rollouts)).double()
    demo_logp = no_grad(lambda: module.policy.token_logprobs(entry.demonstrations)).double()
    text, demo_mask = entry.rollouts.masks.text.double(), entry.demonstrations.masks.completion.double()
    expected = 0.0
    for b, lam_b in enumerate(lam):
        rows = slice(b * GROUP, (b + 1) * GROUP)
        po_b = float(policy_loss(logp[rows], entry.advantages.rollouts.double()[rows], text[rows]).loss)
        sft_b = float(sft_loss(demo_logp[b : b + 1], demo_mask[b : b + 1]))
        expected += (lam_b * po_b + (1.0 - lam_b) * sft_b) / len(lam)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert logged["gate/lambda"] == pytest.approx(sum(lam) / len(lam))


def test_the_group_lambdas_survive_a_checkpoint_of_the_rollout_buffer():
    """A run stopped between two PPO epochs resumes with the same per-group lambdas."""
    torch.manual_seed(0)
    module, _ = make_module(tiny_policy(seed=1), rule=HPTGate(switch_gate=0, success_threshold=1.0), ppo_epochs=2)
    module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
    saved = module.buffer.state_dict()
    other, _ = make_module(tiny_policy(seed=1), rule=HPTGate(), ppo_epochs=2)
    other.buffer.load_state_dict(saved)
    assert torch.equal(other.buffer.entry.plan.group_lam, module.buffer.entry.plan.group_lam)
    assert GateCallback(HPTGate()).state_dict()["rule"] == "HPTGate"
