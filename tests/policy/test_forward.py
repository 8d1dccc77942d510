"""policy/forward.py: the logits-keep keyword, the length check, and train mode without dropout."""

from __future__ import annotations

import pytest
import torch
import transformers
from packaging.version import Version
from torch import nn
from transformers import Qwen2Config, Qwen2ForCausalLM

from wavalign.policy.forward import completion_logits, logits_keep_argument, train_mode_without_dropout


def qwen2(attention_dropout: float = 0.0) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=40,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        attention_dropout=attention_dropout,
    )
    return Qwen2ForCausalLM(config).double()


class AllLogits(nn.Module):
    """A forward that knows no logits-keep keyword at all (and takes no **kwargs): it returns every position."""

    def __init__(self, inner: Qwen2ForCausalLM) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None):
        return self.inner(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache
        )


class Truncating(AllLogits):
    """A broken forward: always the last two positions, whatever was asked."""

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None):
        out = super().forward(input_ids, attention_mask, position_ids, use_cache)
        out.logits = out.logits[:, -2:]
        return out


def inputs(prompt_len: int = 5, total: int = 9):
    ids = torch.randint(0, 40, (2, total), generator=torch.Generator().manual_seed(1))
    attn = torch.ones_like(ids)
    return ids, attn, (attn.cumsum(1) - 1), prompt_len


def test_models_without_the_keyword_are_sliced_by_prompt_length():
    model = qwen2().eval()
    ids, attn, pos, p = inputs()
    new = Version(transformers.__version__).release >= (4, 49)
    assert logits_keep_argument(model) == ("logits_to_keep" if new else "num_logits_to_keep")
    assert logits_keep_argument(AllLogits(model)) is None
    want = model(input_ids=ids).logits[:, p - 1 : -1]
    assert torch.allclose(completion_logits(AllLogits(model), ids, attn, pos, p), want, atol=1e-12, rtol=0)
    assert torch.allclose(completion_logits(model, ids, attn, pos, p), want, atol=1e-12, rtol=0)


def test_an_unexpected_logits_length_is_an_error():
    ids, attn, pos, p = inputs()
    with pytest.raises(RuntimeError, match=r"expected the last 5 positions or all 9"):
        completion_logits(Truncating(qwen2()), ids, attn, pos, p)
    with pytest.raises(ValueError, match="need a prompt and a completion"):
        completion_logits(qwen2(), ids, attn, pos, ids.shape[1])


def test_train_mode_without_dropout_is_the_eval_function_and_restores_modes_and_rates():
    model = qwen2(attention_dropout=0.5)
    model.model.layers[0].mlp.train(False)  # a mixed state, to be restored as it was
    model.lm_head = nn.Sequential(nn.Dropout(0.3), model.lm_head)
    before = {name: m.training for name, m in model.named_modules()}
    ids, attn, pos, p = inputs()
    with torch.no_grad():
        reference = model.eval()(input_ids=ids).logits
        for name, m in model.named_modules():
            m.training = before[name]
        with train_mode_without_dropout(model):
            assert model.training and not model.lm_head[0].training
            assert model.model.layers[0].self_attn.attention_dropout == 0.0
            quiet = model(input_ids=ids).logits
        assert {name: m.training for name, m in model.named_modules()} == before
        assert model.model.layers[0].self_attn.attention_dropout == 0.5
        torch.manual_seed(0)
        noisy = model.train()(input_ids=ids).logits
    assert torch.allclose(quiet, reference, atol=1e-12, rtol=0)
    assert not torch.allclose(noisy, reference, atol=1e-3)  # the dropout that was switched off is real
