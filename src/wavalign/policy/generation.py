"""The GenerationConfig of a rollout: the checkpoint's own, with the recipe's sampling and the main head only.

Why the checkpoint's own: it carries settings the model was released with (VITA-Audio's repetition penalty, its
EOS list, its MCTP schedule), which the official WavAlign trainer keeps, overriding only what it samples with.
Why the main head: checkpoints with MCTP layers (VITA-Audio's `num_nextn_predict_layers`) emit most tokens from
those extra heads when `generation_config.mtp_inference_mode` asks for it (the released configs do), while the
policy's log-probs are the main head's; sampling [N, 0] (N main-head tokens, no MCTP tokens, repeated) keeps the
rollouts on the distribution that is trained. VITA-Audio's own inference script calls [8192, 0] "Vanilla".
"""

from __future__ import annotations

import copy
from typing import Sequence

from torch import nn
from transformers import GenerationConfig

from wavalign.policy.base import SamplingConfig
from wavalign.policy.vita_audio import MAIN_HEAD_ONLY, check_mtp_inference_mode, mctp_layers


def rollout_generation_config(
    model: nn.Module,
    sampling: SamplingConfig,
    eos_id: int,
    pad_id: int,
    mtp_inference_mode: Sequence[int] = MAIN_HEAD_ONLY,
) -> GenerationConfig:
    """A copy of the model's generation config with the sampling settings, EOS and pad of the policy.

    top_k None leaves the checkpoint's top-k as it is (transformers' 50 when it sets none); 0 turns top-k off. mtp_inference_mode is set on models with
    MCTP layers and on configs that carry one, so a checkpoint's own MCTP schedule never leaks into rollouts."""
    base = getattr(model, "generation_config", None)
    config = copy.deepcopy(base) if isinstance(base, GenerationConfig) else GenerationConfig()
    config.do_sample = sampling.do_sample
    config.temperature = sampling.temperature
    config.top_p = sampling.top_p
    if sampling.top_k is not None:
        config.top_k = sampling.top_k
    config.max_new_tokens = sampling.max_new_tokens
    config.eos_token_id = eos_id
    config.pad_token_id = pad_id
    if mctp_layers(model) > 0 or hasattr(config, "mtp_inference_mode"):
        config.mtp_inference_mode = check_mtp_inference_mode(mtp_inference_mode)
    return config
