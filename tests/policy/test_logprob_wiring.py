"""The interleaved policy's training log-probs, position by position, against two independent computations: a plain
forward of each row alone (no padding, no logits_to_keep) in float64, and the logits `generate` itself sampled from."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from conftest import tiny_policy

from wavalign.policy.base import SamplingConfig

MESSAGES = [{"role": "user", "content": "<|audio|>"}]


def test_training_logprobs_equal_a_plain_forward_of_each_row_in_float64():
    policy = tiny_policy(seed=3)
    policy.model.double()
    prompts = [policy.prompt_ids(MESSAGES, [[1, 2, 3, 4, 5]]), policy.prompt_ids(MESSAGES, [[6]])]
    torch.manual_seed(0)
    batch = policy.rollout(
        prompts, group_size=2, sampling=SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=12)
    )
    logp = policy.token_logprobs(batch)
    assert logp.dtype == torch.float64
    for i in range(batch.rows):
        prompt = prompts[i // 2]
        reply = batch.completion_ids[i][batch.masks.completion[i].bool()].tolist()
        with torch.no_grad():
            logits = policy.model(input_ids=torch.tensor([prompt + reply])).logits[0].double()
        expected = F.log_softmax(logits, dim=-1)[torch.arange(len(reply)) + len(prompt) - 1, torch.tensor(reply)]
        assert torch.allclose(logp[i, : len(reply)], expected, atol=1e-10, rtol=0), f"row {i}"


def test_training_logprobs_equal_the_logits_generate_chose_from():
    policy = tiny_policy(seed=3)
    policy.model.double().eval()
    prompt = policy.prompt_ids(MESSAGES, [[1, 2, 3]])
    with torch.no_grad():
        out = policy.model.generate(
            input_ids=torch.tensor([prompt]),
            do_sample=False,
            max_new_tokens=10,
            output_logits=True,
            return_dict_in_generate=True,
            eos_token_id=policy.spec.eos_id,
            pad_token_id=policy.spec.pad_id,
        )
    reply = out.sequences[0, len(prompt) :].tolist()
    assert len(reply) == len(out.logits) >= 2
    expected = torch.stack([F.log_softmax(logits[0].double(), dim=-1)[t] for logits, t in zip(out.logits, reply)])
    batch = policy.make_batch([prompt], [reply])
    logp = policy.token_logprobs(batch)[0, : len(reply)]
    assert out.logits[0].dtype == torch.float32  # generate hands its processors float32 logits, whatever the model
    assert torch.allclose(logp, expected, atol=1e-5, rtol=0)
    assert (logp[1:] - expected[:-1]).abs().max() > 1e-3  # a one-position shift is far outside that tolerance
