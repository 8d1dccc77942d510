"""policy/vita_audio.py: which VITA-Audio checkpoints the policy takes, and the MCTP schedule's form.

Upstream: VITA-MLLM/VITA-Audio vita_audio/tokenizer_sensevoice_glm4voice.py apply_to_role (the Plus checkpoints'
user speech is contiguous, SenseVoice) against tokenizer_glm4voice.py (Boost/Balance: discrete for every role);
modeling_qwen2.py _prepare_mtp_for_generation (pairs of main-head and MCTP token counts, the last pair repeating)."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from wavalign.policy.vita_audio import check_discrete_user_audio, check_mtp_inference_mode, mctp_layers


def tiny_qwen2(**config) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    shape = dict(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    return Qwen2ForCausalLM(Qwen2Config(**shape, **config))


def test_plus_checkpoints_are_refused_with_the_reason_and_the_ones_to_use():
    model = tiny_qwen2()
    check_discrete_user_audio(model)  # a Qwen2 (Boost / Balance are qwen2_mtp) passes
    model.config.model_type = "qwen2_mtp_sensevoice"  # what VITA-Audio-Plus-* declare
    with pytest.raises(ValueError, match=r"continuous SenseVoice features.*VITA-Audio-Boost and VITA-Audio-Balance"):
        check_discrete_user_audio(model)


def test_mctp_layers_and_schedule_validation():
    assert mctp_layers(tiny_qwen2()) == 0
    assert mctp_layers(tiny_qwen2(num_nextn_predict_layers=10)) == 10
    assert check_mtp_inference_mode((8192, 0)) == [8192, 0]
    assert check_mtp_inference_mode([1, 10, 4, 10]) == [1, 10, 4, 10]
    for bad in ([8192], [1, 10, 4], [0, 10], [1, -1], [1.5, 0]):
        with pytest.raises(ValueError, match="mtp_inference_mode"):
            check_mtp_inference_mode(bad)
