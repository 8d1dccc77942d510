"""The GenerationConfig of a rollout: the checkpoint's own, with the recipe's sampling and the main head only.

Why the checkpoint's own: it carries settings the model was released with (VITA-Audio's repetition penalty, its
EOS list, its MCTP schedule), which the official WavAlign trainer keeps, overriding only what it samples with.
Why the main head: checkpoints with MCTP layers (VITA-Audio's `num_nextn_predict_layers`) emit most tokens from
those extra heads when `generation_config.mtp_inference_mode` asks for it (the released configs do), while the
policy's log-probs are the main head's; sampling [N, 0] (N main-head tokens, no MCTP tokens, repeated) keeps the
rollouts on the distribution that is trained. VITA-Audio's own inference script calls [8192, 0] "Vanilla".
Why every stop token: VITA-Audio's released generation_config.json lists two EOS ids, <|im_end|> and <|endoftext|>
(also its pad), and its own generate stops on either; a rollout that stopped on one only would run on past an
<|endoftext|> to the length limit and train on what follows.
"""

from __future__ import annotations

import copy
from typing import Sequence

from torch import nn
from transformers import GenerationConfig

from wavalign.policy.base import SamplingConfig
from wavalign.policy.vita_audio import MAIN_HEAD_ONLY, check_mtp_inference_mode, mctp_layers


def checkpoint_stop_ids(model: nn.Module) -> tuple[int, ...]:
    """The EOS ids of the model's generation config (one id or a list; none gives ()), as generate reads them."""
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None) if isinstance(config, GenerationConfig) else None
    if eos is None:
        return ()
    return tuple(int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]))


def rollout_generation_config(
    model: nn.Module,
    sampling: SamplingConfig,
    eos_id: int | Sequence[int],
    pad_id: int,
    mtp_inference_mode: Sequence[int] = MAIN_HEAD_ONLY,
) -> GenerationConfig:
    """A copy of the model's generation config with the sampling settings, EOS and pad of the policy.

    eos_id: the token that ends a reply, or all of them (generate stops a row at the first of any).

    top_k None leaves the checkpoint's top-k as it is (transformers' 50 when it sets none); 0 turns top-k off.
    mtp_inference_mode is set on models with MCTP layers and on configs that carry one, so a checkpoint's own MCTP
    schedule never leaks into rollouts."""
    base = getattr(model, "generation_config", None)
    config = copy.deepcopy(base) if isinstance(base, GenerationConfig) else GenerationConfig()
    config.do_sample = sampling.do_sample
    config.temperature = sampling.temperature
    config.top_p = sampling.top_p
    if sampling.top_k is not None:
        config.top_k = sampling.top_k
    config.max_new_tokens = sampling.max_new_tokens
    stops = [int(eos_id)] if isinstance(eos_id, int) else [int(e) for e in eos_id]
    config.eos_token_id = stops[0] if len(stops) == 1 else stops
    config.pad_token_id = pad_id
    if mctp_layers(model) > 0 or hasattr(config, "mtp_inference_mode"):
        config.mtp_inference_mode = check_mtp_inference_mode(mtp_inference_mode)
    return config
