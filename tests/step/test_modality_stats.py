"""Per-modality entropy and KL logs by hand in float64, and the module logging them from its training forward."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_policy
from wiring_toys import make_module, no_grad, wiring_examples

from wavalign.gates import FixedGate
from wavalign.policy.masks import ModalityMasks
from wavalign.step.modality_stats import modality_logs, modality_token_means

F64 = torch.float64


def masks() -> ModalityMasks:
    """Two rows: row 0 = text, text, speech, pad; row 1 = speech, text, pad, pad."""
    text = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 0]], dtype=F64)
    speech = torch.tensor([[0, 0, 1, 0], [1, 0, 0, 0]], dtype=F64)
    return ModalityMasks(text + speech, text, speech)


def test_token_means_over_each_modality_of_the_batch():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 5.0, 100.0, 100.0]], dtype=F64)
    out = modality_token_means(values, masks())
    assert float(out["text"]) == pytest.approx((1.0 + 2.0 + 5.0) / 3, rel=1e-15)
    assert float(out["speech"]) == pytest.approx((3.0 + 4.0) / 2, rel=1e-15)
    text_only = ModalityMasks(masks().text, masks().text, torch.zeros(2, 4, dtype=F64))
    assert set(modality_token_means(values, text_only)) == {"text"}  # no speech token: nothing, never 0/0


def test_kl_is_the_k3_estimator_on_each_modality_and_absent_without_a_reference():
    """k3 = exp(r) - r - 1, r = log pi_ref - log pi: r = 0.1 -> e^0.1 - 1.1; r = -0.2 -> e^-0.2 - 0.8."""
    logp = torch.full((2, 4), -1.0, dtype=F64)
    ref = logp + torch.tensor([[0.1, 0.1, -0.2, 0.0], [-0.2, 0.0, 0.0, 0.0]], dtype=F64)
    out = modality_logs(masks(), entropy=None, logp=logp, ref_logp=ref)
    k_a, k_b = math.exp(0.1) - 1.1, math.exp(-0.2) - 0.8
    assert float(out["loss/kl_text"]) == pytest.approx((2 * k_a + 0.0) / 3, rel=1e-12)
    assert float(out["loss/kl_speech"]) == pytest.approx(k_b, rel=1e-12)
    assert "policy/entropy_text" not in out
    assert modality_logs(masks(), logp=logp) == {}


def test_the_module_logs_entropy_and_kl_per_modality_from_its_forward():
    """Entropies recomputed here from the policy's own forward over the entry's rollouts; the reference is the
    initial weights, so the policy is nudged after setup to make the KL non-zero."""
    torch.manual_seed(0)
    policy = tiny_policy(seed=1)
    module, logged = make_module(policy, rule=FixedGate(1.0), beta=0.1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
    entry = module.last_entry
    m = entry.rollouts.masks
    logp, entropy = no_grad(lambda: policy.token_logprobs_and_entropy(entry.rollouts))
    logp, entropy, ref = logp.double(), entropy.double(), entry.ref_logp.double()
    text, speech = m.text.double(), m.speech.double()
    assert text.sum() > 0 and speech.sum() > 0
    assert logged["policy/entropy_text"] == pytest.approx(float((entropy * text).sum() / text.sum()), rel=1e-5)
    assert logged["policy/entropy_speech"] == pytest.approx(float((entropy * speech).sum() / speech.sum()), rel=1e-5)
    k3 = torch.exp(ref - logp) - (ref - logp) - 1
    assert logged["loss/kl_speech"] == pytest.approx(float((k3 * speech).sum() / speech.sum()), rel=1e-4)
    assert logged["loss/kl_text"] == pytest.approx(float((k3 * text).sum() / text.sum()), rel=1e-4)
    assert logged["loss/kl_text"] > 0 and logged["policy/entropy_text"] != logged["policy/entropy_speech"]


def test_entropy_logging_can_be_turned_off():
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), rule=FixedGate(1.0), log_entropy=False)
    module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
    assert not any(k.startswith("policy/entropy") for k in logged)
