"""What `top_k` means when rollouts run through transformers' generate (policy/generation.py)."""

import pytest
import torch
from conftest import tiny_policy

from wavalign.policy.base import SamplingConfig
from wavalign.policy.generation import rollout_generation_config


def distinct_first_tokens(top_k: int | None) -> int:
    """How many different first reply tokens 256 rollouts draw from a policy whose next-token distribution is nearly
    uniform (distinct logits within 0.01 of each other: ties would defeat top-k's threshold)."""
    policy = tiny_policy(num_speech_tokens=256)
    head = policy.model.get_output_embeddings()
    flat = torch.linspace(0.0, 0.01, head.weight.shape[0])
    head.register_forward_hook(lambda module, inputs, output: flat.expand_as(output).to(output.dtype))
    prompt = policy.prompt_ids([{"role": "user", "content": "<|audio|>"}], [[1, 2]])
    torch.manual_seed(0)
    batch = policy.rollout(
        [prompt], group_size=256, sampling=SamplingConfig(temperature=1.0, top_p=1.0, top_k=top_k, max_new_tokens=1)
    )
    return len(set(batch.completion_ids[:, 0].tolist()))


def test_top_k_none_keeps_transformers_default_and_zero_turns_top_k_off():
    vocab = tiny_policy(num_speech_tokens=256).model.get_output_embeddings().weight.shape[0]
    assert vocab > 100  # so that top-k 50 is visibly narrower than no top-k
    assert distinct_first_tokens(None) <= 50  # the tiny checkpoint sets no top-k: transformers applies 50
    assert distinct_first_tokens(0) > 50  # off: 256 uniform draws over > 100 tokens hit far more than 50
    assert distinct_first_tokens(5) <= 5


def test_top_k_none_keeps_the_checkpoints_own_and_an_explicit_value_replaces_it():
    policy = tiny_policy()
    policy.model.generation_config.top_k = 3
    keep = rollout_generation_config(policy.model, SamplingConfig(), policy.spec.eos_id, policy.spec.pad_id)
    off = rollout_generation_config(policy.model, SamplingConfig(top_k=0), policy.spec.eos_id, policy.spec.pad_id)
    assert (keep.top_k, off.top_k) == (3, 0)


def test_a_negative_top_k_is_refused():
    with pytest.raises(ValueError, match="invalid sampling settings"):
        SamplingConfig(top_k=-1)
