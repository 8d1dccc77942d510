"""SRFT by hand in float64 (Fu et al., arXiv 2506.19767, section 4: L_SFT^demo weighted by 0.5 sg(exp(-H)), positive
self-rollouts by 0.1 sg(exp(H)), the terms added, not mixed)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_policy
from loss_cases import hand_rows, rollouts_case
from wiring_toys import make_module, no_grad, wiring_examples

from wavalign.callbacks.gating import GateCallback
from wavalign.gates import TokenInputs
from wavalign.gates.srft import SRFTGate
from wavalign.step.losses import policy_loss, sft_loss
from wavalign.step.plan import StepPlan

F64 = torch.float64


def inputs_case() -> TokenInputs:
    """rollouts_case with per-token entropies: row entropies (masked means) 0.5, 1.0, 0.2, 2.0; demos 0.4 and 1.1."""
    c = rollouts_case()
    entropy = torch.tensor([[0.3, 0.7], [1.0, 9.0], [0.1, 0.3], [9.0, 2.0]], dtype=F64)  # 9.0: off the mask
    demo_entropy = torch.tensor([[0.2, 0.6, 9.0], [0.9, 1.2, 1.2]], dtype=F64)
    return TokenInputs(c["logp"], c["demo_logp"], c["adv"], c["mask"], c["demo_mask"], entropy, demo_entropy)


def test_weights_are_exp_of_each_sequences_entropy():
    """Advantages (1, -1, 0.5, -0.5): rows 0 and 2 are positive -> 0.1 e^0.5 and 0.1 e^0.2; rows 1 and 3 keep 1.
    Demonstrations: 0.5 e^-0.4 and 0.5 e^-1.1."""
    po, sft = SRFTGate().token_weights(inputs_case())
    assert po.squeeze(1).tolist() == pytest.approx([0.1 * math.exp(0.5), 1.0, 0.1 * math.exp(0.2), 1.0], rel=1e-14)
    assert sft.squeeze(1).tolist() == pytest.approx([0.5 * math.exp(-0.4), 0.5 * math.exp(-1.1)], rel=1e-14)
    assert SRFTGate().update(torch.zeros(2, 4)).lam == 0.5 and SRFTGate().fixed_lambda is None


def test_the_loss_adds_the_weighted_terms_at_full_scale():
    """L = (1/N) sum_i w_i l_i + (1/B) sum_b w_b nll_b, l_i the per-row GRPO losses of rollouts_case (by hand)."""
    c, inputs = rollouts_case(), inputs_case()
    w = GateCallback(SRFTGate()).loss_weights(StepPlan(0.5, 0.5, full_scale=True), 2, inputs)
    assert (w.po_scale, w.sft_scale) == (1.0, 1.0)
    po = policy_loss(c["logp"], c["adv"], c["mask"], old_logp=c["old"], token_weights=w.po_weights).loss
    sft = sft_loss(c["demo_logp"], c["demo_mask"], w.sft_weights)
    r0, r1, r2, r3 = hand_rows()
    want_po = (0.1 * math.exp(0.5) * r0 + r1 + 0.1 * math.exp(0.2) * r2 + r3) / 4
    want_sft = (0.5 * math.exp(-0.4) * (0.2 + 0.4) / 2 + 0.5 * math.exp(-1.1) * (1.0 + 0.6 + 0.9) / 3) / 2
    assert float(po) == pytest.approx(want_po, rel=1e-12)
    assert float(sft) == pytest.approx(want_sft, rel=1e-12)


def test_the_weights_carry_no_gradient():
    """d L_SFT / d log p_demo[0, 0] = -w_0 / (2 rows x 2 tokens); the entropy weight is a constant."""
    inputs = inputs_case()
    demo_logp = inputs.demo_logp.clone().requires_grad_(True)
    inputs.demo_logp = demo_logp
    _, sft_w = SRFTGate().token_weights(inputs)
    sft_loss(demo_logp, rollouts_case()["demo_mask"], sft_w).backward()
    assert float(demo_logp.grad[0, 0]) == pytest.approx(-0.5 * math.exp(-0.4) / 4, rel=1e-14)


def test_the_module_step_is_the_sum_of_the_entropy_weighted_terms():
    """Entropies and log-probs recomputed here from the policy's own forward; advantages from the entry."""
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), rule=SRFTGate())
    loss = module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
    entry, policy = module.last_entry, module.policy
    logp, ent = no_grad(lambda: policy.token_logprobs_and_entropy(entry.rollouts))
    demo_logp, demo_ent = no_grad(lambda: policy.token_logprobs_and_entropy(entry.demonstrations))
    mask, demo_mask = entry.rollouts.masks.completion.double(), entry.demonstrations.masks.completion.double()
    adv = entry.advantages.rollouts.double()
    h = (ent.double() * mask).sum(1) / mask.sum(1)
    h_demo = (demo_ent.double() * demo_mask).sum(1) / demo_mask.sum(1)
    w_po = torch.where(adv > 0, 0.1 * h.exp(), torch.ones_like(h))
    assert bool((adv > 0).any()) and bool((adv < 0).any())
    po = policy_loss(logp.double(), adv, entry.rollouts.masks.text.double(), token_weights=w_po[:, None]).loss
    sft = sft_loss(demo_logp.double(), demo_mask, (0.5 * (-h_demo).exp())[:, None])
    assert float(loss.detach()) == pytest.approx(float(po + sft), rel=1e-5)
    assert logged["loss/sft"] == pytest.approx(float(sft), rel=1e-5) and logged["gate/lambda"] == 0.5


def test_negative_coefficients_are_refused():
    with pytest.raises(ValueError, match="sft_coef and rl_coef"):
        SRFTGate(rl_coef=-0.1)
