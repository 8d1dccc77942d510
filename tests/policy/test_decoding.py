import pytest
import torch
from conftest import tiny_policy

from wavalign.policy.base import SamplingConfig
from wavalign.policy.decoding import sample_next

MESSAGES = [{"role": "user", "content": "<|audio|>"}]


@pytest.mark.parametrize("decoder", ["static", "compiled"])
def test_static_cache_greedy_equals_transformers_generate(decoder):
    policy = tiny_policy(seed=5)
    prompts = [policy.prompt_ids(MESSAGES, [[1, 2, 3, 4]]), policy.prompt_ids(MESSAGES, [[9]])]  # different lengths
    greedy = SamplingConfig(max_new_tokens=20, do_sample=False)
    reference = policy.rollout(prompts, 2, greedy)
    policy.decoder = decoder
    ours = policy.rollout(prompts, 2, greedy)
    policy.decoder = "generate"
    n = min(reference.completion_ids.shape[1], ours.completion_ids.shape[1])
    assert torch.equal(reference.completion_ids[:, :n], ours.completion_ids[:, :n])
    assert torch.equal(reference.masks.completion[:, :n], ours.masks.completion[:, :n])


def test_static_cache_is_reused_between_rollouts():
    policy = tiny_policy(seed=5)
    policy.decoder = "static"
    prompts = [policy.prompt_ids(MESSAGES, [[1, 2]])]
    policy.rollout(prompts, 2, SamplingConfig(max_new_tokens=8))
    policy.rollout(prompts, 2, SamplingConfig(max_new_tokens=8))
    assert len(policy._sampler.caches) == 1


def test_top_p_keeps_the_smallest_nucleus():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(2000, 1)
    draws = sample_next(logits, SamplingConfig(temperature=1.0, top_p=0.75)).flatten()
    assert set(draws.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.75; the tail is cut
    assert (draws == 0).float().mean().item() == pytest.approx(0.5 / 0.8, abs=0.04)
    topk = sample_next(logits, SamplingConfig(temperature=1.0, top_p=1.0, top_k=1)).flatten()
    assert set(topk.tolist()) == {0}


def test_unknown_decoder_is_rejected():
    from conftest import DEBUG_VOCAB

    from wavalign.policy.interleaved import InterleavedPolicy
    from wavalign.policy.tiny import TinyQwen2

    with pytest.raises(ValueError, match="decoder"):
        InterleavedPolicy(
            TinyQwen2(
                str(DEBUG_VOCAB),
                num_speech_tokens=8,
                hidden_size=16,
                num_layers=1,
                num_heads=2,
                num_kv_heads=1,
                intermediate_size=16,
            ),
            num_speech_tokens=8,
            decoder="vllm",
        )
