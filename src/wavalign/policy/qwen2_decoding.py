"""A fast sampling loop for Qwen2-architecture policies (the embedded world's TinyQwen2): the decode step written as
a few tensor ops on a static cache, run eagerly (compiling it cost more than it saved per run: docs/performance.md).

Why by hand (docs/performance.md, "Where a decode step goes"): at the world's shape (16-200 rows, 128 wide, 4 layers,
one CPU thread) a decode step of transformers' Qwen2 costs about 4 ms, 20x its arithmetic. Eager, the time goes to
its module, mask and logits-processor machinery; compiled, to CPU flash attention for a single query (350 us a call),
mask and `repeat_kv` kernels over the whole cache, and a sort and an exponential draw over the whole vocabulary.
Here attention is two batched matmuls over the filled slots, with the query heads grouped by their key/value head,
and top-k comes first, so top-p and the draw run over k tokens, not the vocabulary.

The math is transformers' Qwen2 forward (RMSNorm, rotary positions, grouped-query attention, SwiGLU, the LM head):
equal to it at float64 rounding. The sampled distribution is generate's temperature -> top-k -> top-p one, with the
checkpoint's top-k as generate reads it; the random draws are not generate's. The prompt is prefilled by
transformers' own forward. Other architectures, adapters, sliding windows and scaled rotary get a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import GenerationConfig, Qwen2ForCausalLM

from wavalign.policy.decoding import BUCKET, is_stop
from wavalign.policy.finite_logits import NonFiniteLogits

LayerWeights = tuple[Tensor | None, ...]


@dataclass(frozen=True)
class Qwen2Shape:
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    scaling: float


@dataclass(frozen=True)
class DrawSettings:
    """The sampling that generate's processors would apply: temperature, then top-k (0: off), then top-p (1: off)."""

    do_sample: bool
    temperature: float
    top_k: int
    top_p: float


_NEUTRAL = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "typical_p": (None, 1.0),
    "min_p": (None,),
    "epsilon_cutoff": (None, 0.0),
    "eta_cutoff": (None, 0.0),
    "bad_words_ids": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "encoder_repetition_penalty": (None, 1.0),
    "sequence_bias": (None,),
}


def _generate_defaults() -> dict:
    """What generate fills in for fields a GenerationConfig leaves unset (transformers 5: top_k 50, temperature 1)."""
    defaults = getattr(GenerationConfig, "_get_default_generation_params", None)
    return defaults() if defaults is not None else {"top_k": 50, "temperature": 1.0, "top_p": 1.0}


def draw_settings(config: GenerationConfig) -> DrawSettings:
    """The DrawSettings of a rollout's GenerationConfig, unset fields read as generate reads them; a logits processor
    this loop does not apply is an error (it would sample from another distribution than generate)."""
    for field, neutral in _NEUTRAL.items():
        value = getattr(config, field, None)
        if value not in neutral:
            raise ValueError(
                f"decoder 'fused' applies temperature, top-k and top-p only; the generation config sets {field}={value!r}"
                ": use decoder: generate"
            )
    defaults = _generate_defaults()

    def read(field: str) -> object:
        value = getattr(config, field, None)
        return value if value is not None else defaults.get(field)

    return DrawSettings(
        do_sample=bool(read("do_sample")),
        temperature=float(read("temperature")),
        top_k=int(read("top_k") or 0),
        top_p=float(read("top_p")),
    )


def check_qwen2(model: torch.nn.Module) -> Qwen2Shape:
    """The attention shape of a plain Qwen2ForCausalLM, or a ValueError naming what this loop cannot run."""
    if not isinstance(model, Qwen2ForCausalLM):
        raise ValueError(
            f"decoder 'fused' runs a plain transformers Qwen2ForCausalLM (no adapters), got {type(model).__name__}: "
            "use decoder: generate"
        )
    config = model.config
    if getattr(config, "use_sliding_window", False):
        raise ValueError("decoder 'fused' has no sliding-window attention (config.use_sliding_window): use generate")
    rotary = model.model.rotary_emb
    if getattr(rotary, "rope_type", "default") != "default" or float(getattr(rotary, "attention_scaling", 1.0)) != 1.0:
        raise ValueError(f"decoder 'fused' has plain rotary positions only, the model's are {rotary.rope_type!r}")
    if config.hidden_act != "silu":
        raise ValueError(f"decoder 'fused' has the SiLU MLP only, config.hidden_act is {config.hidden_act!r}")
    dtype = next(model.parameters()).dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"decoder 'fused' runs float32 or float64 weights, the model's are {dtype}")
    attention = model.model.layers[0].self_attn
    heads = config.num_attention_heads
    return Qwen2Shape(heads, config.num_key_value_heads, attention.head_dim, config.rms_norm_eps, attention.scaling)


def qwen2_weights(model: Qwen2ForCausalLM) -> tuple[tuple[LayerWeights, ...], tuple[Tensor, ...]]:
    """The tensors a decode step reads, taken afresh for each rollout (the weights change every update): per layer
    (input norm, q|k|v weight, q|k|v bias, o weight, post-attention norm, gate|up weight, down weight), the
    projections that read the same input stacked into one matmul; then (embedding, final norm, LM head, inv_freq)."""
    layers = []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        projections = (a.q_proj, a.k_proj, a.v_proj)
        bias = [p.bias if p.bias is not None else p.weight.new_zeros(p.out_features) for p in projections]
        layers.append(
            (
                layer.input_layernorm.weight,
                torch.cat([p.weight for p in projections]),
                torch.cat(bias),
                a.o_proj.weight,
                layer.post_attention_layernorm.weight,
                torch.cat([m.gate_proj.weight, m.up_proj.weight]),
                m.down_proj.weight,
            )
        )
    model_parts = (model.model.embed_tokens.weight, model.model.norm.weight, model.lm_head.weight)
    return tuple(layers), model_parts + (model.model.rotary_emb.inv_freq,)


def _rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """Qwen2RMSNorm: normalised in float32 (float64 inputs too, as transformers does), scaled in the input's dtype."""
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def decode_logits(
    layers: tuple[LayerWeights, ...],
    parts: tuple[Tensor, ...],
    shape: Qwen2Shape,
    token: Tensor,
    position: Tensor,
    attention: Tensor,
    keys: Sequence[Tensor],
    values: Sequence[Tensor],
    where: Tensor,
    span: int | None = None,
) -> Tensor:
    """One token per row through the model: writes its keys and values at cache slot `where` and returns the next
    token's logits (rows, vocab) in float32 (float64 for a float64 model). attention: (rows, T) bool, True where a
    slot is attended (the new slot included); keys, values: per layer (rows, kv_heads, T, head_dim); span: attend
    over the first `span` slots only (the filled ones; None: all T, for a graph of fixed shapes)."""
    embedding, final_norm, head, inv_freq = parts
    rows, groups, dim = token.shape[0], shape.heads // shape.kv_heads, shape.head_dim
    rotated = shape.heads + shape.kv_heads  # q and k heads, rotated together
    freqs = position.to(torch.float32) * inv_freq.to(torch.float32)[None, :]  # (rows, dim/2)
    angles = torch.cat((freqs, freqs), dim=-1)
    dtype = embedding.dtype
    cos, sin = angles.cos().to(dtype)[:, None], angles.sin().to(dtype)[:, None]  # (rows, 1, dim)
    blocked = ~attention[:, None, None, :span]  # (rows, 1, 1, span)
    h = F.embedding(token[:, 0], embedding)  # (rows, hidden)
    for i, (n1, qkv_w, qkv_b, o_w, n2, gate_up_w, down_w) in enumerate(layers):
        qkv = F.linear(_rms_norm(h, n1, shape.eps), qkv_w, qkv_b).view(rows, rotated + shape.kv_heads, dim)
        qk = _rotate(qkv[:, :rotated], cos, sin)
        keys[i].index_copy_(2, where, qk[:, shape.heads :, None])
        values[i].index_copy_(2, where, qkv[:, rotated:, None])
        # query head j*groups + g reads key/value head j (transformers' repeat_kv order)
        grouped = qk[:, : shape.heads].reshape(rows, shape.kv_heads, groups, dim)
        k, v = keys[i][:, :, :span], values[i][:, :, :span]
        scores = torch.matmul(grouped, k.transpose(2, 3)) * shape.scaling  # (rows, kv_heads, groups, span)
        weights = torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1)
        h = h + F.linear(torch.matmul(weights, v).reshape(rows, shape.heads * dim), o_w)
        gate, up = F.linear(_rms_norm(h, n2, shape.eps), gate_up_w).chunk(2, dim=-1)
        h = h + F.linear(F.silu(gate) * up, down_w)
    logits = F.linear(_rms_norm(h, final_norm, shape.eps), head)
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def kept_distribution(logits: Tensor, settings: DrawSettings) -> tuple[Tensor, Tensor]:
    """(probabilities (rows, k), their token ids (rows, k)) of generate's temperature, top-k and top-p processors
    followed by softmax, for sampling settings; probabilities outside the kept tokens are 0.

    Top-k keeps exactly k tokens (transformers keeps every token tied with the k-th logit as well). Top-p is computed
    as transformers does, on the ascending cumulative softmax of the kept logits."""
    scores = logits / settings.temperature if settings.temperature != 1.0 else logits
    k = min(settings.top_k, scores.shape[-1]) if settings.top_k > 0 else scores.shape[-1]
    kept, order = torch.topk(scores, k, dim=-1)  # descending
    if settings.top_p < 1.0:
        ascending = kept.flip(-1)
        removed = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1 - settings.top_p)
        removed[:, -1] = False  # the most likely token always stays
        kept = kept.masked_fill(removed.flip(-1), float("-inf"))
    return torch.softmax(kept, dim=-1), order


def draw(logits: Tensor, settings: DrawSettings) -> Tensor:
    """(rows, 1) tokens from (rows, vocab) float32 logits: greedy, or one draw from kept_distribution the way torch's
    multinomial draws one sample (the argmax of p / E, E ~ Exp(1)), over the kept tokens only."""
    if not settings.do_sample:
        return logits.argmax(dim=-1, keepdim=True)
    probs, order = kept_distribution(logits, settings)
    race = probs / torch.empty_like(probs).exponential_()
    return order.gather(1, race.argmax(dim=-1, keepdim=True))


def _bad_logits(logits: Tensor) -> Tensor:
    """Scalar bool: NaN or +inf logits, or a row with no finite one (check_finite_logits, kept in the graph)."""
    return torch.isnan(logits).any() | torch.isposinf(logits).any() | torch.isneginf(logits).all(dim=-1).any()


def prefill(
    model: Qwen2ForCausalLM, prompt_ids: Tensor, prompt_mask: Tensor, keys: Sequence[Tensor], values: Sequence[Tensor]
) -> tuple[Tensor, Tensor]:
    """transformers' forward over the left-padded prompts, its keys and values copied into the cache's first slots.
    Returns (the next token's logits (rows, vocab), at least float32, the prompt's position ids)."""
    positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(
        input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True, logits_to_keep=1
    )
    p_len = prompt_ids.shape[1]
    cache = out["cache"] if "cache" in out else out["past_key_values"]  # transformers 5 renamed it
    for i, layer in enumerate(cache.layers):
        keys[i][:, :, :p_len] = layer.keys
        values[i][:, :, :p_len] = layer.values
    logits = out.logits[:, -1, :]
    return logits.to(torch.promote_types(logits.dtype, torch.float32)), positions


def cache_length(prompt_len: int, max_new_tokens: int, unroll: int) -> int:
    """The static cache's slots for a rollout: prompt, new tokens and one unrolled call's overshoot, rounded up to
    BUCKET so that nearby prompt lengths share a cache (and a compiled graph)."""
    return -(-(prompt_len + max_new_tokens + unroll) // BUCKET) * BUCKET


class Qwen2FusedSampler:
    """Samples completions of a Qwen2ForCausalLM with decode_logits and draw over a static cache.

    compile=True compiles `unroll` decode-and-draw steps into one graph: about 20 % less per token, but 5-100 s of
    compilation per process and shape or sampling setting, more than a world run saves (docs/performance.md)."""

    def __init__(self, model: Qwen2ForCausalLM, compile: bool = False, unroll: int = 4) -> None:
        if unroll < 1:
            raise ValueError(f"unroll must be >= 1, got {unroll}")
        self.model, self.shape, self.unroll, self.compiled = model, check_qwen2(model), unroll, compile
        self.steps: Callable = torch.compile(self._steps, dynamic=True) if compile else self._steps
        self.caches: dict[tuple[int, int, torch.dtype], tuple[list[Tensor], list[Tensor]]] = {}

    def _steps(
        self,
        layers: tuple[LayerWeights, ...],
        parts: tuple[Tensor, ...],
        token: Tensor,
        position: Tensor,
        attention: Tensor,
        keys: list[Tensor],
        values: list[Tensor],
        where: Tensor,
        done: Tensor,
        settings: DrawSettings,
        stops: tuple[int, ...],
        pad_id: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Feed `token` at slot `where`, then draw `unroll` tokens; rows already done get pad.
        Returns (tokens (rows, unroll), done, bad logits seen)."""
        out, bad = [], torch.zeros((), dtype=torch.bool, device=token.device)
        for i in range(self.unroll):
            attention.index_fill_(1, where + i, True)
            span = None if self.compiled else int(where) + i + 1  # eager: only the filled slots
            logits = decode_logits(
                layers, parts, self.shape, token, position + i, attention, keys, values, where + i, span
            )
            bad = bad | _bad_logits(logits)
            token = draw(logits, settings).masked_fill(done, pad_id)
            done = done | is_stop(token, stops)
            out.append(token)
        return torch.cat(out, dim=1), done, bad

    def _cache(self, rows: int, length: int, dtype: torch.dtype, device: torch.device) -> tuple[list, list]:
        key = (rows, length, dtype)
        if key not in self.caches:
            size = (rows, self.shape.kv_heads, length, self.shape.head_dim)
            layers = len(self.model.model.layers)
            self.caches[key] = (
                [torch.empty(size, dtype=dtype, device=device) for _ in range(layers)],
                [torch.empty(size, dtype=dtype, device=device) for _ in range(layers)],
            )
        keys, values = self.caches[key]
        if self.compiled:  # the graph reads every slot: masked, but a stale NaN would leak through 0 * NaN
            for t in keys + values:
                t.zero_()
        return keys, values

    @torch.no_grad()
    def sample(
        self,
        prompt_ids: Tensor,
        prompt_mask: Tensor,
        settings: DrawSettings,
        max_new_tokens: int,
        eos_id: int | Sequence[int],
        pad_id: int,
    ) -> Tensor:
        """(rows, P) left-padded prompts -> (rows, T <= max_new_tokens) completions, pad after each row's stop token.
        Raises NonFiniteLogits where generate's FiniteLogitsCheck would."""
        stops = (int(eos_id),) if isinstance(eos_id, int) else tuple(int(e) for e in eos_id)
        rows, p_len = prompt_ids.shape
        length = cache_length(p_len, max_new_tokens, self.unroll)
        layers, parts = qwen2_weights(self.model)
        keys, values = self._cache(rows, length, parts[0].dtype, prompt_ids.device)
        logits, positions = prefill(self.model, prompt_ids, prompt_mask, keys, values)
        if bool(_bad_logits(logits)):
            raise NonFiniteLogits("the policy's next-token logits hold NaN or +inf (or a row with no finite value)")
        token = draw(logits, settings)
        done = is_stop(token, stops)
        tokens = [token]
        attention = torch.zeros(rows, length, dtype=torch.bool, device=prompt_ids.device)
        attention[:, :p_len] = prompt_mask.bool()
        position = positions[:, -1:] + 1
        where = torch.tensor([p_len], device=prompt_ids.device)
        made = 1
        while made < max_new_tokens and not bool(done.all()):
            new, done, bad = self.steps(
                layers, parts, token, position, attention, keys, values, where, done, settings, stops, pad_id
            )
            if bool(bad):
                raise NonFiniteLogits("the policy's next-token logits hold NaN or +inf (or a row with no finite value)")
            tokens.append(new)
            token, position, where, made = new[:, -1:], position + self.unroll, where + self.unroll, made + self.unroll
        return torch.cat(tokens, dim=1)[:, :max_new_tokens]
