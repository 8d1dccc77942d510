"""The step plan's mix every gate rule maps to (step/plan.py), checked by hand in float64, and the module applying a
lambda per group exactly as L = (1/B) sum_b [lambda_b L_PO,b + (1 - lambda_b) L_SFT,b]."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_policy
from loss_cases import hand_rows, rollouts_case
from wiring_toys import GROUP, make_module, no_grad, wiring_examples

from wavalign.callbacks.gating import GateCallback
from wavalign.gates import DynamicGate, GateOutput, GateRule, TokenInputs
from wavalign.step.losses import policy_loss, sft_loss
from wavalign.step.plan import StepPlan, mix_weights

F64 = torch.float64


def plan(lam: float, group_lam: torch.Tensor | None = None) -> StepPlan:
    return StepPlan(lam, lam, group_lam)


def rows(n: int) -> torch.Tensor:
    """Stand-in log-probs of n rollout rows (mix_weights reads only their count, device and dtype)."""
    return torch.zeros(n, 2, dtype=F64)


def test_a_batch_lambda_is_the_plain_mix():
    w = mix_weights(plan(0.3), GROUP, rows(2 * GROUP))
    assert (w.po_scale, w.sft_scale, w.po_weights, w.sft_weights) == (0.3, 1.0 - 0.3, None, None)


def test_a_lambda_per_group_mixes_each_group_by_its_own_lambda():
    c = rollouts_case()
    lam = torch.tensor([0.25, 1.0], dtype=F64)
    w = mix_weights(plan(float(lam.mean()), lam), 2, rows(4))
    assert (w.po_scale, w.sft_scale) == (1.0, 1.0)
    assert torch.equal(w.po_weights, torch.tensor([[0.25], [0.25], [1.0], [1.0]], dtype=F64))
    assert torch.equal(w.sft_weights, torch.tensor([[0.75], [0.0]], dtype=F64))
    po = policy_loss(c["logp"], c["adv"], c["mask"], old_logp=c["old"], token_weights=w.po_weights).loss
    sft = sft_loss(c["demo_logp"], c["demo_mask"], w.sft_weights)
    r0, r1, r2, r3 = hand_rows()
    nll0, nll1 = (0.2 + 0.4) / 2, (1.0 + 0.6 + 0.9) / 3
    assert float(po) == pytest.approx((0.25 * r0 + 0.25 * r1 + 1.0 * r2 + 1.0 * r3) / 4, rel=1e-12)
    assert float(sft) == pytest.approx((0.75 * nll0 + 0.0 * nll1) / 2, rel=1e-12)
    # the same number written per group: (1/B) sum_b [lam_b L_PO,b + (1 - lam_b) L_SFT,b]
    per_group = (0.25 * (r0 + r1) / 2 + 0.75 * nll0 + 1.0 * (r2 + r3) / 2 + 0.0 * nll1) / 2
    assert float(w.po_scale * po + w.sft_scale * sft) == pytest.approx(per_group, rel=1e-12)


def test_equal_group_lambdas_give_the_batch_mix():
    """A batch lambda is the special case: every group at 0.6 gives 0.6 L_PO + 0.4 L_SFT (loss_type grpo)."""
    c = rollouts_case()
    w = mix_weights(plan(0.6, torch.tensor([0.6, 0.6], dtype=F64)), 2, rows(4))
    po = policy_loss(c["logp"], c["adv"], c["mask"], old_logp=c["old"], token_weights=w.po_weights).loss
    sft = sft_loss(c["demo_logp"], c["demo_mask"], w.sft_weights)
    plain_po = policy_loss(c["logp"], c["adv"], c["mask"], old_logp=c["old"]).loss
    plain_sft = sft_loss(c["demo_logp"], c["demo_mask"])
    assert float(po + sft) == pytest.approx(float(0.6 * plain_po + 0.4 * plain_sft), rel=1e-12)


def test_group_lambdas_outside_0_1_or_of_the_wrong_count_are_refused():
    with pytest.raises(ValueError, match="group_lam must lie in"):
        mix_weights(plan(0.5, torch.tensor([1.5, 0.0], dtype=F64)), 2, rows(4))
    with pytest.raises(ValueError, match="group_lam has 3 groups"):
        GateCallback(DynamicGate()).loss_weights(
            plan(0.5, torch.tensor([1.0, 0.0, 1.0])), 2, TokenInputs(torch.zeros(4, 2), torch.zeros(2, 3))
        )


class ScriptedGroupGate(GateRule):
    """Hands out a fixed lambda per group, so the module's mix can be recomputed without knowing the rewards."""

    def __init__(self, group_lam: list[float]) -> None:
        self.group_lam = torch.tensor(group_lam, dtype=F64)

    def update(self, rewards: torch.Tensor, reliable: torch.Tensor | None = None) -> GateOutput:
        lam = float(self.group_lam.mean())
        return GateOutput(lam, lam, self.group_lam.clone())


def test_the_module_mixes_each_group_by_its_own_lambda():
    """The step's loss is (1/B) sum_b [lam_b L_PO,b + (1 - lam_b) L_SFT,b], each group's terms computed here on its own
    rows with the pure objectives and the policy's log-probs."""
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), rule=ScriptedGroupGate([0.25, 1.0]))
    batch = {"ids": [0, 1], "examples": wiring_examples()}
    loss = module.training_step(batch, 0)
    entry = module.last_entry
    logp = no_grad(lambda: module.policy.token_logprobs(entry.rollouts)).double()
    demo_logp = no_grad(lambda: module.policy.token_logprobs(entry.demonstrations)).double()
    text, demo_mask = entry.rollouts.masks.text.double(), entry.demonstrations.masks.completion.double()
    adv = entry.advantages.rollouts.double()
    expected = 0.0
    for b, lam in enumerate((0.25, 1.0)):
        rows = slice(b * GROUP, (b + 1) * GROUP)
        po_b = policy_loss(logp[rows], adv[rows], text[rows]).loss
        sft_b = sft_loss(demo_logp[b : b + 1], demo_mask[b : b + 1])
        expected += (lam * float(po_b) + (1.0 - lam) * float(sft_b)) / 2
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert logged["gate/lambda"] == pytest.approx(0.625)
    assert float(adv[:GROUP].abs().sum()) > 0 or float(adv[GROUP:].abs().sum()) > 0  # the PO term is not empty


def test_dynamic_gate_steps_are_bit_identical_to_the_plain_mix():
    """The paper's gate through the generic path (step_logprobs with entropies on, the plan's weights, modality logs) gives
    exactly lambda L_PO + (1 - lambda) L_SFT computed from one plain joint forward: torch.equal, not approx."""
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), rule=DynamicGate(lambda_max=0.8, alpha=0.0, k=5.0, tau=1.0))
    loss = module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
    entry, policy = module.last_entry, module.policy
    assert 0.0 < entry.lam < 1.0 and "policy/entropy_text" in logged
    logp, demo_logp = policy.joint_logprobs([entry.rollouts, entry.demonstrations])
    po = policy_loss(logp, entry.advantages.rollouts, entry.rollouts.masks.select("text"), old_logp=logp.detach()).loss
    sft = sft_loss(demo_logp, entry.demonstrations.masks.completion)
    assert torch.equal(loss, entry.lam * po + (1.0 - entry.lam) * sft)
