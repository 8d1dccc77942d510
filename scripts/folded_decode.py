"""A folded Qwen2 decode step, a timing prototype for `speed_bound.py`: the RMSNorm scales folded into the next
matmul and rotate_half folded into extra q|k rows, so a decode step is a handful of matmuls, compiled with static
shapes, inductor's C++ wrapper and frozen weights. Not a decoder (no stop handling or finiteness checks, the cache
slot a constant); its logits equal transformers' (tests/test_folded_decode.py)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def folded_weights(model) -> tuple[list, tuple]:
    """The decode step's weights with the RMSNorm scales folded into the next matmul and rotate_half folded into
    extra q|k rows, so a decode step is a handful of matmuls (float rounding differs from transformers)."""
    d = model.model.layers[0].self_attn.head_dim

    def rotated_rows(w):
        w = w.view(-1, d, *w.shape[1:])
        return torch.cat((-w[:, d // 2 :], w[:, : d // 2]), dim=1).reshape(-1, *w.shape[2:])

    layers = []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        qk_w, qk_b = torch.cat([a.q_proj.weight, a.k_proj.weight]), torch.cat([a.q_proj.bias, a.k_proj.bias])
        w = torch.cat([qk_w, rotated_rows(qk_w), a.v_proj.weight]) * layer.input_layernorm.weight[None, :]
        gate_up = torch.cat([m.gate_proj.weight, m.up_proj.weight]) * layer.post_attention_layernorm.weight[None, :]
        layers.append(
            (
                w.t().contiguous(),
                torch.cat([qk_b, rotated_rows(qk_b), a.v_proj.bias]),
                a.o_proj.weight.t().contiguous(),
                gate_up.t().contiguous(),
                m.down_proj.weight.t().contiguous(),
            )
        )
    head = (model.lm_head.weight * model.model.norm.weight[None, :]).t().contiguous()
    return layers, (model.model.embed_tokens.weight, head, model.model.rotary_emb.inv_freq)


def folded_decoder(model, rows: int, length: int) -> tuple[Callable, torch.Tensor]:
    """(logits(token (rows, 1), position (rows, 1), slot) -> (rows, vocab), the additive attention mask
    (rows * kv_heads, 1, length): 0 where a slot is attended, -inf where not; all 0 at first) of the folded decode
    step over a static cache of `length` slots. Writes the token's keys and values at `slot`."""
    import torch.nn.functional as F

    from wavalign.policy.qwen2_decoding import check_qwen2

    with torch.no_grad():
        shape, (layers, parts) = check_qwen2(model), folded_weights(model)
    heads, kv, d, eps = shape.heads, shape.kv_heads, shape.head_dim, shape.eps
    embedding, head, inv_freq = parts
    keys = [torch.zeros(rows, kv, length, d, dtype=embedding.dtype) for _ in layers]
    values = [torch.zeros(rows, kv, length, d, dtype=embedding.dtype) for _ in layers]
    mask = torch.zeros(rows * kv, 1, length, dtype=embedding.dtype)

    def logits(token, position, slot: int):
        angles = position.float() * inv_freq.float()[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos().to(embedding.dtype)[:, None], angles.sin().to(embedding.dtype)[:, None]
        h = F.embedding(token[:, 0], embedding)
        r = heads + kv
        for i, (w_qkv, b_qkv, w_o, w_gate_up, w_down) in enumerate(layers):
            qkv = torch.addmm(b_qkv, F.rms_norm(h, (h.shape[-1],), None, eps), w_qkv).view(rows, 2 * r + kv, d)
            qk = torch.addcmul(qkv[:, :r] * cos, qkv[:, r : 2 * r], sin)
            keys[i][:, :, slot] = qk[:, heads:]
            values[i][:, :, slot] = qkv[:, 2 * r :]
            q = qk[:, :heads].reshape(rows * kv, heads // kv, d)
            k, v = keys[i].view(rows * kv, length, d), values[i].view(rows * kv, length, d)
            scores = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=shape.scaling)
            h = torch.addmm(h, torch.bmm(torch.softmax(scores, dim=-1), v).view(rows, heads * d), w_o)
            gate_up = torch.mm(F.rms_norm(h, (h.shape[-1],), None, eps), w_gate_up)
            half = gate_up.shape[-1] // 2
            h = torch.addmm(h, F.silu(gate_up[:, :half]) * gate_up[:, half:], w_down)
        return torch.mm(F.rms_norm(h, (h.shape[-1],), None, eps), head)

    return logits, mask


def folded_step_per_token(model, rows: int, length: int, reps: int) -> tuple[float, float]:
    """(seconds, first-call seconds) of one folded decode-and-draw step over a full static cache of `length` slots,
    compiled with static shapes, inductor's C++ wrapper and frozen weights: the fastest decode step measured (a
    prototype, not the product's loop: no stop handling or finiteness checks)."""
    import torch._inductor.config as inductor

    from wavalign.policy.qwen2_decoding import DrawSettings, draw

    logits, _ = folded_decoder(model, rows, length)
    settings = DrawSettings(True, 0.9, 50, 0.9)
    inductor.cpp_wrapper, inductor.freezing = True, True
    try:
        compiled = torch.compile(
            lambda token, position, slot: draw(logits(token, position, slot), settings), dynamic=False
        )
        token, position = torch.randint(0, model.config.vocab_size, (rows, 1)), torch.full((rows, 1), length // 2)
        with torch.no_grad():
            start = time.perf_counter()
            compiled(token, position, length // 2)
            first = time.perf_counter() - start
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                compiled(token, position, length // 2)
                times.append(time.perf_counter() - start)
            return statistics.median(times), first
    finally:
        inductor.cpp_wrapper, inductor.freezing = False, False
