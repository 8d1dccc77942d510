"""The fused Qwen2 decoder against transformers: its logits in float64, its sampled distribution exactly, its greedy
rollouts token for token, and its refusals."""

import pytest
import torch
from conftest import tiny_policy
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from transformers import GenerationConfig, LogitsProcessorList, Qwen2Config, Qwen2ForCausalLM
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from wavalign.policy.base import SamplingConfig
from wavalign.policy.finite_logits import NonFiniteLogits
from wavalign.policy.lora import LoraSettings
from wavalign.policy.qwen2_decoding import (
    DrawSettings,
    Qwen2FusedSampler,
    check_qwen2,
    decode_logits,
    draw,
    draw_settings,
    kept_distribution,
    prefill,
    qwen2_weights,
)

MESSAGES = [{"role": "user", "content": "<|audio|>"}]


def qwen2(dtype: torch.dtype = torch.float64, seed: int = 0, **overrides) -> Qwen2ForCausalLM:
    """A small random Qwen2 with grouped-query attention and random biases and norm weights (transformers
    initialises them to 0 and 1, which would hide a missing bias or norm weight)."""
    config = Qwen2Config(
        vocab_size=97,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=96,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        **overrides,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "norm" in name else 0.0))
    return model


def left_padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r)
        mask[i, width - len(r) :] = 1
    return ids, mask


@pytest.mark.parametrize("filled_only", [False, True])
def test_teacher_forced_logits_equal_transformers_forward_in_float64(filled_only):
    model = qwen2()
    shape = check_qwen2(model)
    prompt_ids, prompt_mask = left_padded([[5, 6, 7, 8, 9, 10], [11, 12, 13], [14]])
    follow = torch.tensor([[20, 21, 22, 23, 24], [30, 31, 32, 33, 34], [40, 41, 42, 43, 44]])
    rows, p_len, n = prompt_ids.shape[0], prompt_ids.shape[1], follow.shape[1]
    size = (rows, shape.kv_heads, 32, shape.head_dim)
    keys = [torch.zeros(size, dtype=torch.float64) for _ in range(2)]
    values = [torch.zeros(size, dtype=torch.float64) for _ in range(2)]
    with torch.no_grad():
        first, positions = prefill(model, prompt_ids, prompt_mask, keys, values)
        layers, parts = qwen2_weights(model)
        attention = torch.zeros(rows, 32, dtype=torch.bool)
        attention[:, :p_len] = prompt_mask.bool()
        ours = [first]
        for i in range(n):
            attention[:, p_len + i] = True
            where = torch.tensor([p_len + i])
            span = p_len + i + 1 if filled_only else None  # the eager loop's span, or the whole cache
            step = decode_logits(
                layers,
                parts,
                shape,
                follow[:, i : i + 1],
                positions[:, -1:] + 1 + i,
                attention,
                keys,
                values,
                where,
                span,
            )
            ours.append(step)
        ids = torch.cat([prompt_ids, follow], dim=1)
        mask = torch.cat([prompt_mask, torch.ones_like(follow)], dim=1)
        full = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).logits
    gap = (torch.stack(ours, dim=1) - full[:, p_len - 1 :]).abs().max().item()
    print("max |ours - transformers| in float64:", gap)
    assert gap < 1e-12


def hf_probs(logits: torch.Tensor, s: DrawSettings) -> torch.Tensor:
    warpers = LogitsProcessorList()
    if s.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(s.temperature))
    if s.top_k > 0:
        warpers.append(TopKLogitsWarper(s.top_k))
    if s.top_p < 1.0:
        warpers.append(TopPLogitsWarper(s.top_p))
    return torch.softmax(warpers(None, logits.clone()), dim=-1)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    temperature=st.sampled_from([0.5, 0.7, 0.9, 1.0, 1.3]),
    top_k=st.sampled_from([0, 1, 3, 50, 200]),
    top_p=st.sampled_from([0.3, 0.75, 0.9, 1.0]),
)
def test_kept_distribution_is_transformers_warpers_then_softmax(seed, temperature, top_k, top_p):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, 120, generator=gen) * 3
    s = DrawSettings(True, temperature, top_k, top_p)
    probs, order = kept_distribution(logits, s)
    full = torch.zeros_like(logits).scatter(1, order, probs)
    assert torch.allclose(full, hf_probs(logits, s), atol=1e-6, rtol=0)


def test_draws_follow_the_kept_distribution():
    torch.manual_seed(3)
    logits = torch.randn(1, 40) * 2
    s = DrawSettings(True, 0.9, 10, 0.9)
    counts = torch.bincount(draw(logits.repeat(40_000, 1), s).flatten(), minlength=40)
    expected = hf_probs(logits, s)[0]
    support = expected > 0
    assert torch.equal(counts > 0, support)  # nothing outside the kept set is ever drawn
    f_exp = expected[support].double()
    _, p = stats.chisquare(counts[support].double().numpy(), (f_exp / f_exp.sum() * 40_000).numpy())
    assert p > 1e-3


def test_greedy_equals_transformers_generate_with_stop_and_pad():
    model = qwen2(dtype=torch.float32, seed=1)
    prompt_ids, prompt_mask = left_padded([[5, 6, 7, 8], [11, 12], [3, 4, 5, 6, 7, 8, 9]])
    greedy = DrawSettings(False, 1.0, 0, 1.0)
    probe = Qwen2FusedSampler(model, compile=False).sample(prompt_ids, prompt_mask, greedy, 12, 96, 0)
    stop = int(probe[0, 3])  # row 0 stops at its 4th token: later tokens are pad
    for sampler in (Qwen2FusedSampler(model, compile=False), Qwen2FusedSampler(model, compile=True)):
        ours = sampler.sample(prompt_ids, prompt_mask, greedy, 12, stop, 0)
        config = GenerationConfig(do_sample=False, max_new_tokens=12, eos_token_id=stop, pad_token_id=0)
        with torch.no_grad():
            out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, generation_config=config)
        theirs = out[:, prompt_ids.shape[1] :]
        n = theirs.shape[1]
        assert torch.equal(ours[:, :n], theirs)
        assert (ours[:, n:] == 0).all() and ours.shape[1] <= 12
        assert (ours[0, 4:] == 0).all()


def test_the_samplers_own_loop_reads_transformers_logits_at_every_step(monkeypatch):
    """The loop's bookkeeping (positions, cache slots, the attention mask across unrolled steps), which the test
    above drives by hand: the logits the sampler drew each token from equal transformers' forward over the prompt plus
    the tokens it drew, in float64. A tiny random model's greedy argmax barely depends on positions, so generate's
    tokens alone would not show an off-by-one here."""
    import wavalign.policy.qwen2_decoding as fused

    model = qwen2()
    seen, real = [], fused.decode_logits

    def record(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out.clone())
        return out

    monkeypatch.setattr(fused, "decode_logits", record)
    prompt_ids, prompt_mask = left_padded([[5, 6, 7, 8, 9, 10], [11, 12, 13], [14]])
    torch.manual_seed(1)
    sampled = DrawSettings(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
    tokens = Qwen2FusedSampler(model, unroll=3).sample(prompt_ids, prompt_mask, sampled, 10, -1, 0)  # no stop
    ids = torch.cat([prompt_ids, tokens], dim=1)
    mask = torch.cat([prompt_mask, torch.ones_like(tokens)], dim=1)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).logits
    p_len, n = prompt_ids.shape[1], tokens.shape[1]
    assert n == 10 and len(seen) >= n - 1
    gap = (torch.stack(seen[: n - 1], dim=1) - full[:, p_len : p_len + n - 1]).abs().max().item()
    assert gap < 1e-12


def test_sampled_rollouts_through_the_policy():
    policy = tiny_policy(seed=2)
    policy.decoder = "fused"
    policy._sampler = Qwen2FusedSampler(policy.model, compile=False)  # compiled: the greedy test above
    prompts = [policy.prompt_ids(MESSAGES, [[1, 2, 3]]), policy.prompt_ids(MESSAGES, [[7]])]
    torch.manual_seed(0)
    out = policy.rollout(prompts, 3, SamplingConfig(max_new_tokens=10))
    assert out.completion_ids.shape[0] == 6 and out.completion_ids.shape[1] <= 10
    assert out.masks.completion.shape == out.completion_ids.shape
    assert len(policy._sampler.caches) == 1


def test_non_finite_weights_raise_non_finite_logits():
    model = qwen2(dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    ids, mask = left_padded([[1, 2, 3]])
    with pytest.raises(NonFiniteLogits):
        Qwen2FusedSampler(model, compile=False).sample(ids, mask, DrawSettings(True, 1.0, 0, 1.0), 5, 96, 0)


def test_what_the_loop_cannot_run_is_refused_by_name():
    with pytest.raises(ValueError, match="use_sliding_window"):
        check_qwen2(qwen2(use_sliding_window=True, sliding_window=8))
    with pytest.raises(ValueError, match="Qwen2ForCausalLM"):
        check_qwen2(tiny_policy(lora=LoraSettings(r=4)).model)
    with pytest.raises(ValueError, match="repetition_penalty"):
        draw_settings(GenerationConfig(do_sample=True, repetition_penalty=1.2))
    assert draw_settings(GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9)) == DrawSettings(
        True, 0.7, 50, 0.9
    )
