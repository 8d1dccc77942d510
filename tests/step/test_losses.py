import math

import pytest
import torch

from wavalign.step.losses import aggregate, dpo_loss, group_advantages, k3_kl, policy_loss, sft_loss

D = torch.float64


def test_group_advantages_by_hand_with_zero_variance_group():
    rewards = torch.tensor([[4.0, 3.0, 5.0, 2.0], [3.0, 3.0, 3.0, 3.0]], dtype=D)
    adv = group_advantages(rewards)
    std = math.sqrt(1.25)  # population std of (4, 3, 5, 2)
    expected = [(r - 3.5) / (std + 1e-4) for r in (4, 3, 5, 2)]
    assert torch.allclose(adv[0], torch.tensor(expected, dtype=D), atol=1e-12)
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert not torch.isnan(adv).any()


def test_group_advantages_ignore_unreliable_scores():
    rewards = torch.tensor([[5.0, 1.0, 2.5, 3.0], [2.5, 4.0, 2.5, 2.5]], dtype=D)
    reliable = torch.tensor([[True, True, False, True], [False, True, False, False]])
    adv = group_advantages(rewards, reliable)
    std = math.sqrt(8.0 / 3.0)  # over (5, 1, 3), whose mean is 3
    assert torch.allclose(adv[0], torch.tensor([2 / (std + 1e-4), -2 / (std + 1e-4), 0.0, 0.0], dtype=D))
    assert adv[1].tolist() == [0.0] * 4  # one reliable score: no information


def test_k3_kl_by_hand():
    logp = torch.tensor([math.log(0.5), math.log(0.2)], dtype=D)
    ref = torch.tensor([math.log(0.25), math.log(0.2)], dtype=D)
    kl = k3_kl(logp, ref)
    assert kl[0].item() == pytest.approx(0.5 - math.log(0.5) - 1.0, abs=1e-12)
    assert kl[1].item() == 0.0
    assert (k3_kl(torch.randn(50, dtype=D), torch.randn(50, dtype=D)) >= 0).all()


def test_policy_loss_first_update_value_and_gradient():
    # two rows, three positions; advantages +1 / -1; mask differs per row
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.1], [0.2, 0.4, 0.3]], dtype=D)).requires_grad_()
    ref = torch.log(torch.tensor([[0.25, 0.25, 0.1], [0.2, 0.2, 0.3]], dtype=D))
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]], dtype=D)
    adv = torch.tensor([1.0, -1.0], dtype=D)
    out = policy_loss(logp, adv, mask, ref_logp=ref, beta=0.1)
    d = k3_kl(logp.detach(), ref)
    row0 = (-(1.0) + 0.1 * d[0, 0] - 1.0 + 0.1 * d[0, 1]) / 2
    row1 = ((1.0) + 0.1 * d[1, 1] + 1.0 + 0.1 * d[1, 2]) / 2
    assert out.loss.item() == pytest.approx(((row0 + row1) / 2).item(), abs=1e-12)
    out.loss.backward()
    # d/dlogp of -rho*A at rho = 1 is -A, averaged per row over its 2 masked tokens, over 2 rows; plus KL term
    r = ref - logp.detach()
    dkl = -(torch.exp(r) - 1.0)
    expected = (-adv.unsqueeze(1) + 0.1 * dkl) * mask / 2 / 2
    assert torch.allclose(logp.grad, expected, atol=1e-12)


def test_policy_loss_ppo_clip():
    old = torch.zeros(1, 2, dtype=D)
    logp = torch.tensor([[math.log(1.5), math.log(0.5)]], dtype=D)
    mask = torch.ones(1, 2, dtype=D)
    out = policy_loss(logp, torch.tensor([1.0], dtype=D), mask, old_logp=old, epsilon=0.2)
    # token 0: min(1.5, 1.2) = 1.2 (clipped); token 1: min(0.5, 0.8) = 0.5
    assert out.loss.item() == pytest.approx(-(1.2 + 0.5) / 2)
    assert out.clip_ratio.item() == pytest.approx(0.5)


def test_text_only_loss_has_zero_gradient_on_speech_token_logits():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, dtype=D, requires_grad=True)
    tokens = torch.tensor([[1, 5, 6, 2, 0], [5, 5, 3, 0, 0]])
    is_speech = torch.tensor([[0, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=D)
    completion = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=D)
    text = completion * (1 - is_speech)
    adv = torch.tensor([1.0, -0.5], dtype=D)

    def grad_for(mask):
        logits.grad = None
        logp = torch.gather(torch.log_softmax(logits, -1), 2, tokens.unsqueeze(-1)).squeeze(-1)
        policy_loss(logp, adv, mask).loss.backward()
        return logits.grad.abs().sum(-1)

    g_text = grad_for(text)
    assert (g_text[is_speech.bool()] == 0).all()
    assert (g_text[text.bool()] > 0).all()
    g_all = grad_for(completion)
    assert (g_all[is_speech.bool()] > 0).all()


def test_sft_loss_per_row_normalisation():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.9], [0.1, 0.9, 0.9]], dtype=D))
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=D)
    expected = ((math.log(2) + math.log(4)) / 2 + math.log(10)) / 2
    assert sft_loss(logp, mask).item() == pytest.approx(expected, abs=1e-12)


def test_aggregate_variants():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], dtype=D)
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=D)
    assert aggregate(x, m, "grpo").item() == pytest.approx((2.0 + 4.0) / 2)
    assert aggregate(x, m, "dapo").item() == pytest.approx(10.0 / 4)
    assert aggregate(x, m, "dr_grpo").item() == pytest.approx(10.0 / 6)
    with pytest.raises(ValueError, match="loss_type"):
        aggregate(x, m, "ppo")


def test_dpo_loss_by_hand():
    chosen = torch.tensor([[-1.0, -2.0]], dtype=D)
    rejected = torch.tensor([[-1.5, -0.5]], dtype=D)
    ref_c = torch.tensor([[-1.2, -2.0]], dtype=D)
    ref_r = torch.tensor([[-1.0, -0.5]], dtype=D)
    mask_c = torch.tensor([[1.0, 1.0]], dtype=D)
    mask_r = torch.tensor([[1.0, 0.0]], dtype=D)  # the second token of the rejected reply is speech
    margin = (0.2 + 0.0) - (-0.5)
    expected = -math.log(1 / (1 + math.exp(-0.1 * margin)))
    assert dpo_loss(chosen, rejected, ref_c, ref_r, mask_c, mask_r, beta=0.1).item() == pytest.approx(expected)


def test_policy_loss_clip_bounds_are_one_minus_epsilon_and_one_plus_epsilon_high():
    """Clip-higher (DAPO): the ratio is clipped to [1 - epsilon, 1 + epsilon_high], two different bounds. The case
    makes each bound decide a token: a negative advantage with a ratio below 1 - epsilon (0.75 < 0.8, yet above
    1 - epsilon_high = 0.72, so a lower bound taken from epsilon_high would not clip it) and a positive advantage
    with a ratio between 1 + epsilon and 1 + epsilon_high (1.25: unclipped) or above it (1.35: clipped at 1.28)."""
    ratios = torch.tensor([[0.75, 0.9], [1.25, 1.35]], dtype=D)
    logp = ratios.log().requires_grad_()
    adv = torch.tensor([-1.0, 1.0], dtype=D)
    out = policy_loss(
        logp, adv, torch.ones(2, 2, dtype=D), old_logp=torch.zeros(2, 2, dtype=D), epsilon=0.2, epsilon_high=0.28
    )
    # l = -min(r A, clip(r, 0.8, 1.28) A): row 0 (A = -1): 0.8 (clipped up to 0.8), 0.9; row 1 (A = +1): -1.25, -1.28
    row0, row1 = (0.8 + 0.9) / 2, (-1.25 - 1.28) / 2
    assert out.loss.item() == pytest.approx((row0 + row1) / 2, abs=1e-12)  # -0.2075; lower bound 0.72: -0.22
    assert out.clip_ratio.item() == pytest.approx(2 / 4)
    out.loss.backward()
    # d l / d logp = -A r where unclipped, 0 where clipped; each token weighs 1/2 in its row, each row 1/2
    expected = torch.tensor([[0.0, 0.9], [-1.25, 0.0]], dtype=D) / 4
    assert torch.allclose(logp.grad, expected, atol=1e-12, rtol=0)
