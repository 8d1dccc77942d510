"""Per-position entropy read from the training forward (policy/forward.py token_entropy), checked in float64 against
H = -sum_v p_v log p_v written out by hand and against a plain forward of each row, for both policy layouts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_policy
from test_parallel import tiny_parallel

from wavalign.policy import forward
from wavalign.policy.base import SamplingConfig
from wavalign.policy.forward import token_entropy

MESSAGES = [{"role": "user", "content": "<|audio|>"}]
SAMPLING = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=12)


def test_entropy_of_hand_distributions_including_masked_tokens():
    """[0.5, 0.25, 0.25] -> 1.5 ln 2; a one-hot -> 0; a -inf (masked) entry contributes 0, not NaN."""
    probs = torch.tensor([[[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    h = token_entropy(probs.log())
    assert h[0].tolist() == pytest.approx([1.5 * math.log(2), 0.0], abs=1e-15)
    assert not h.requires_grad


def test_chunking_changes_nothing(monkeypatch):
    """With a chunk of one row at a time the values are the same as with the whole batch at once."""
    logp = F.log_softmax(torch.randn(5, 3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), -1)
    whole = token_entropy(logp)
    monkeypatch.setattr(forward, "ENTROPY_CHUNK_ELEMENTS", 1)
    assert torch.equal(token_entropy(logp), whole)
    assert torch.allclose(whole, -(logp.exp() * logp).sum(-1), atol=1e-14, rtol=0)


def test_interleaved_entropy_equals_a_plain_forward_of_each_row_and_survives_the_joint_forward():
    policy = tiny_policy(seed=3)
    policy.model.double()
    prompts = [policy.prompt_ids(MESSAGES, [[1, 2, 3, 4, 5]]), policy.prompt_ids(MESSAGES, [[6]])]
    torch.manual_seed(0)
    batch = policy.rollout(prompts, group_size=2, sampling=SAMPLING)
    logp, entropy = policy.token_logprobs_and_entropy(batch)
    assert torch.equal(logp, policy.token_logprobs(batch)) and not entropy.requires_grad
    for i in range(batch.rows):
        prompt = prompts[i // 2]
        reply = batch.completion_ids[i][batch.masks.completion[i].bool()].tolist()
        with torch.no_grad():
            logits = policy.model(input_ids=torch.tensor([prompt + reply])).logits[0].double()
        lp = F.log_softmax(logits[torch.arange(len(reply)) + len(prompt) - 1], dim=-1)
        assert torch.allclose(entropy[i, : len(reply)], -(lp.exp() * lp).sum(-1), atol=1e-10, rtol=0), f"row {i}"
    demo = policy.make_batch(prompts, [policy.reply_ids("one two", [1, 2, 3]), policy.reply_ids("three", [4])])
    (j_logp, j_ent), (d_logp, d_ent) = policy.joint_logprobs([batch, demo], with_entropy=True)
    completion, demo_completion = batch.masks.completion.bool(), demo.masks.completion.bool()
    assert torch.allclose(j_ent[completion], entropy[completion], atol=1e-10, rtol=0)
    assert torch.allclose(j_logp[completion], logp[completion], atol=1e-10, rtol=0)
    d_alone = policy.token_logprobs_and_entropy(demo)[1]
    assert torch.allclose(d_ent[demo_completion], d_alone[demo_completion], atol=1e-10, rtol=0)


def test_parallel_entropy_is_each_heads_own_distribution():
    """(N, 2T) = [text head's entropy | audio head's entropy], from the biased (restricted) heads; 0 off the reply."""
    policy = tiny_parallel(seed=1)
    policy.model.double()
    policy.text_bias, policy.audio_bias = policy.text_bias.double(), policy.audio_bias.double()
    prompt = policy.prompt_ids(MESSAGES, [[1, 2, 3]])
    torch.manual_seed(0)
    batch = policy.rollout([prompt], group_size=2, sampling=SAMPLING)
    logp, entropy = policy.token_logprobs_and_entropy(batch)
    t = batch.completion_ids.shape[1]
    ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1)
    attention = torch.cat([batch.prompt_mask, batch.masks.completion[:, :t].long()], dim=1)
    position = (attention.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        text_logits, audio_logits = policy.model(
            text_ids=ids[..., 0],
            audio_ids=ids[..., 1],
            attention_mask=attention,
            position_ids=position,
            logits_to_keep=t + 1,
        )
    for logits, bias, cols in (
        (text_logits, policy.text_bias, slice(0, t)),
        (audio_logits, policy.audio_bias, slice(t, 2 * t)),
    ):
        lp = F.log_softmax(logits[:, :-1].double() + bias, dim=-1)
        want = torch.special.entr(lp.exp()).sum(-1)
        on = batch.masks.completion[:, cols].bool()
        assert torch.allclose(entropy[:, cols][on], want[on], atol=1e-10, rtol=0)
        assert bool((entropy[:, cols][~on] == 0).all())
    assert torch.isfinite(entropy).all() and torch.equal(logp, policy.token_logprobs(batch))
