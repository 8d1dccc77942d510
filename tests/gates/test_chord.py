"""CHORD by hand: upstream modelscope/Trinity-RFT, trinity/algorithm/policy_loss_fn/chord_policy_loss.py
(`mu_schedule_function`: linear warm-up to mu_peak, half-cosine decay to mu_valley; `phi_function`: p (1 - p),
detached; `MIXCHORDPolicyLossFn`: L = (1 - mu) L_GRPO + mu L_SFT)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_policy
from wiring_toys import make_module, no_grad, wiring_examples

from wavalign.callbacks.gating import GateCallback
from wavalign.gates import TokenInputs
from wavalign.gates.chord import CHORDGate, chord_mu, chord_phi
from wavalign.step.losses import sft_loss

R = torch.zeros(1, 4)


def test_mu_warms_up_linearly_then_decays_on_a_half_cosine_to_the_valley():
    """warm-up 4 steps to 0.5, decay over 4 steps to 0.1: mu(2) = 2/4 0.5; mu(6) = 0.1 + 0.4 (1 + cos(pi/2)) / 2."""
    mu = [chord_mu(s, 4, 4, 0.5, 0.1) for s in range(10)]
    expected = [
        0.0,
        0.125,
        0.25,
        0.375,
        0.5,
        0.1 + 0.4 * 0.5 * (1 + math.cos(math.pi / 4)),
        0.3,
        0.1 + 0.4 * 0.5 * (1 + math.cos(3 * math.pi / 4)),
        0.1,
        0.1,
    ]
    assert mu == pytest.approx(expected, abs=1e-15)
    assert chord_mu(0, 0, 0, 0.9, 0.2) == 0.2  # no warm-up and no decay: the valley at once, never 0/0


def test_the_gate_hands_out_one_minus_mu_per_rollout_batch_and_resumes_the_count():
    gate = CHORDGate(mu_peak=0.5, mu_valley=0.1, mu_warmup_steps=4, mu_decay_steps=4)
    lams = [gate.update(R).lam for _ in range(3)]
    assert lams == pytest.approx([1.0, 0.875, 0.75]) and gate.update(R).group_lam is None
    resumed = CHORDGate(mu_peak=0.5, mu_valley=0.1, mu_warmup_steps=4, mu_decay_steps=4)
    callback = GateCallback(resumed)
    callback.load_state_dict(GateCallback(gate).state_dict())
    assert resumed.step == 4 and callback.rule.update(R).lam == pytest.approx(1.0 - 0.5)


def test_phi_weights_each_sft_token_by_p_one_minus_p_without_a_gradient_through_it():
    """Per row: sum_t m phi_t (-log p_t) / sum_t m; d/d logp_t = -phi_t / (rows sum_t m) (phi is detached)."""
    probs = torch.tensor([[0.5, 0.9, 0.2]], dtype=torch.float64)
    logp = probs.log().requires_grad_(True)
    mask = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    po_w, phi = CHORDGate(phi=True).token_weights(TokenInputs(torch.zeros(4, 3), logp))
    assert po_w is None and torch.allclose(phi, torch.tensor([[0.25, 0.09, 0.16]], dtype=torch.float64))
    loss = sft_loss(logp, mask, phi)
    assert float(loss.detach()) == pytest.approx((0.25 * -math.log(0.5) + 0.09 * -math.log(0.9)) / 2, rel=1e-12)
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([-0.25 / 2, -0.09 / 2, 0.0], abs=1e-15)
    assert CHORDGate(phi=False).token_weights(TokenInputs(torch.zeros(4, 3), logp)) == (None, None)
    assert torch.equal(chord_phi(logp), phi)


def test_the_module_step_is_one_minus_mu_grpo_plus_mu_phi_weighted_sft():
    torch.manual_seed(0)
    gate = CHORDGate(mu_peak=0.4, mu_valley=0.4, phi=True)  # mu = 0.4 at every step
    module, logged = make_module(tiny_policy(seed=1), rule=gate)
    loss = module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
    entry = module.last_entry
    demo = entry.demonstrations
    demo_logp = no_grad(lambda: module.policy.token_logprobs(demo)).double()
    p = demo_logp.exp()
    sft = float(sft_loss(demo_logp, demo.masks.completion.double(), p * (1 - p)))
    assert logged["gate/lambda"] == pytest.approx(0.6)
    assert logged["loss/sft"] == pytest.approx(sft, rel=1e-5)
    assert float(loss.detach()) == pytest.approx(0.6 * logged["loss/po"] + 0.4 * sft, rel=1e-5)
    w = module.gate.loss_weights(entry.plan, 4, TokenInputs(torch.zeros(8, 2), demo_logp))
    assert (w.po_scale, w.sft_scale) == pytest.approx((0.6, 0.4))


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="mu_peak"):
        CHORDGate(mu_peak=1.5)
    with pytest.raises(ValueError, match="step counts"):
        CHORDGate(mu_warmup_steps=-1)
