"""The parallel-stream transformer (Kimi-Audio style) and where its weights come from.

One causal transformer reads, at every step, the sum of a text-token embedding and an audio-token embedding. A shared
backbone feeds two branches of their own decoder layers, each ending in a norm and a head over the shared vocabulary:
the text head emits the step's text-stream token, the audio head its audio-stream token. Kimi-Audio-7B is exactly this
with 28 Qwen2 layers: its audio branch (6 "mimo" layers) reads the hidden state after layer 21, and its text branch is
layers 22..27 with the final norm and lm_head. Every stack here is a transformers Qwen2Model (embeddings only in the
backbone, no final norm), so attention kernels, masks, rotary embeddings, KV caches and gradient checkpointing are
transformers' own, and the same module serves a tiny random model and the real checkpoint.
"""

from __future__ import annotations

import importlib.util
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import DynamicCache, PreTrainedTokenizerBase, Qwen2Config, Qwen2Model
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm
from transformers.utils import logging as hf_logging

# transformers renamed the cache argument (past_key_values -> cache); pass whichever this version takes
_CACHE_KW = "cache" if "cache" in inspect.signature(Qwen2Model.forward).parameters else "past_key_values"
# transformers before masking_utils (4.48.3, VITA-Audio's pin) builds the 4D mask itself; see _legacy_4d_mask
_LEGACY_MASKS = importlib.util.find_spec("transformers.masking_utils") is None


def _legacy_4d_mask(attention_mask: Tensor, steps: int, dtype: torch.dtype) -> Tensor:
    """The (rows, 1, steps, keys) additive causal mask of a 2D padding mask (keys = cached + new steps), as
    transformers 4.48's Qwen2Model builds it, except that a query row with no visible key (a left-padding step) sees
    every key instead of none. 4.48 leaves such rows at finfo(dtype).min everywhere; in float64 that is -inf once its
    eager attention takes the softmax in float32, the padded rows turn NaN, and 0 * NaN spreads them into the real
    rows' attention. A padded row's output is read by nothing, so the real rows keep their exact values."""
    keys = attention_mask.shape[-1]
    query = torch.arange(keys - steps, keys, device=attention_mask.device)
    key = torch.arange(keys, device=attention_mask.device)
    allowed = (key[None, :] <= query[:, None])[None] & attention_mask[:, None, :].bool()
    allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
    blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=attention_mask.device)
    return torch.where(allowed, torch.zeros((), dtype=dtype, device=attention_mask.device), blocked).unsqueeze(1)


def _config_with(config: Qwen2Config, **changes) -> Qwen2Config:
    values = config.to_dict()
    values.update(changes)
    values.pop("layer_types", None)  # re-derived from num_hidden_layers
    out = Qwen2Config(**values)
    implementation = config._attn_implementation
    if _LEGACY_MASKS and getattr(config, "_attn_implementation_internal", "") is None:
        # unset: 4.48's Qwen2Model(config) takes eager (softmax in float32 even for a float64 model), 5.x takes sdpa
        implementation = "sdpa"
    out._attn_implementation = implementation
    return out


def _stack(config: Qwen2Config, layers: int, embeddings: bool) -> Qwen2Model:
    """A Qwen2Model of `layers` decoder layers without its final norm (the branches own their norms)."""
    changes = (
        {"num_hidden_layers": layers}
        if embeddings
        else {"num_hidden_layers": layers, "vocab_size": 1, "pad_token_id": None}
    )
    model = Qwen2Model(_config_with(config, **changes))
    model.norm = nn.Identity()
    if not embeddings:
        model.embed_tokens = None  # branches read hidden states, never token ids
    return model


def _new_dynamic_cache(config: Qwen2Config) -> DynamicCache:
    try:
        return DynamicCache(config=config)
    except TypeError:  # older transformers
        return DynamicCache()


@dataclass
class ParallelCache:
    """KV caches of the three stacks, filled in place by each forward."""

    backbone: DynamicCache
    text: DynamicCache | None
    audio: DynamicCache | None


class FeatureAdaptor(nn.Module):
    """Kimi-Audio's vq_adaptor: continuous features (Whisper states, 4 frames concatenated) -> hidden size, by
    Linear, SiLU, Linear, LayerNorm (modeling_kimia.py, VQAdaptor; its dropout has p = 0 and is left out)."""

    def __init__(self, input_dim: int, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.in_proj = nn.Linear(input_dim, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.out_proj(F.silu(self.in_proj(x))))


class ParallelLM(nn.Module):
    """config describes the backbone (num_hidden_layers = shared layers); text_layers / audio_layers are the
    branch-specific decoder layers (0 = the head reads the backbone's output through its norm); feature_dim > 0
    adds the adaptor for continuous inputs (Kimi-Audio: kimia_adaptor_input_dim = 5120)."""

    def __init__(self, config: Qwen2Config, text_layers: int = 0, audio_layers: int = 0, feature_dim: int = 0) -> None:
        super().__init__()
        if text_layers < 0 or audio_layers < 0 or config.num_hidden_layers < 1 or feature_dim < 0:
            raise ValueError("the backbone needs >= 1 layer, the branches >= 0 layers and feature_dim >= 0")
        self.config = config
        self.vq_adaptor = FeatureAdaptor(feature_dim, config.hidden_size, config.rms_norm_eps) if feature_dim else None
        self.backbone = _stack(config, config.num_hidden_layers, embeddings=True)
        self.text_branch = _stack(config, text_layers, embeddings=False) if text_layers else None
        self.audio_branch = _stack(config, audio_layers, embeddings=False) if audio_layers else None
        self.text_norm = Qwen2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.audio_norm = Qwen2RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.text_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.audio_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        std = config.initializer_range
        for head in (self.text_head, self.audio_head):
            nn.init.normal_(head.weight, mean=0.0, std=std)

    @property
    def stacks(self) -> list[Qwen2Model]:
        return [s for s in (self.backbone, self.text_branch, self.audio_branch) if s is not None]

    @property
    def vocab_size(self) -> int:
        return self.text_head.out_features

    def new_cache(self) -> ParallelCache:
        def make(stack: Qwen2Model | None) -> DynamicCache | None:
            return None if stack is None else _new_dynamic_cache(stack.config)

        return ParallelCache(make(self.backbone), make(self.text_branch), make(self.audio_branch))

    def gradient_checkpointing_enable(self) -> None:
        """Non-reentrant checkpointing in every stack (LoRA-only training has inputs without grad). transformers
        warns that the branches expose no token embeddings: they have none by design, so that warning is muted."""
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            for stack in self.stacks:
                if hasattr(stack, "activation_checkpointing_enable"):  # transformers >= 5.2x
                    stack.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
                else:
                    stack.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        finally:
            hf_logging.set_verbosity(verbosity)

    def gradient_checkpointing_disable(self) -> None:
        """Off in every stack (the frozen reference copy: nothing to recompute for)."""
        for stack in self.stacks:
            if hasattr(stack, "activation_checkpointing_disable"):
                stack.activation_checkpointing_disable()
            else:
                stack.gradient_checkpointing_disable()

    @staticmethod
    def _run(
        stack: Qwen2Model, x: Tensor, attention_mask: Tensor, position_ids: Tensor, cache: DynamicCache | None
    ) -> Tensor:
        kwargs = {_CACHE_KW: cache} if cache is not None else {}
        if _LEGACY_MASKS and attention_mask.dim() == 2 and stack.config._attn_implementation != "flash_attention_2":
            attention_mask = _legacy_4d_mask(attention_mask, x.shape[1], x.dtype)
        out = stack(
            inputs_embeds=x,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=cache is not None,
            **kwargs,
        )
        return out.last_hidden_state

    def embed(
        self,
        text_ids: Tensor,
        audio_ids: Tensor,
        continuous: Tensor | None = None,
        features: Tensor | None = None,
        text_rows: Tensor | None = None,
    ) -> Tensor:
        """The input of step t: embed(audio_t) + embed(text_t); at continuous steps (a (rows, steps) bool mask, with
        `features` holding one row per marked step in row-major order) the audio part becomes
        (embed(audio_t) + adaptor(feature_t)) * sqrt(2), as Kimi-Audio's MoonshotKimiaModel.forward feeds it.
        text_rows: a (rows,) bool mask; a row marked False gets no text embedding at all in this call (Kimi-Audio's
        forward adds it only when the call's text ids do not sum to 0, see ParallelPolicy's zero_text_skips_embedding);
        None adds it everywhere."""
        table = self.backbone.embed_tokens
        audio = table(audio_ids)
        if continuous is not None and bool(continuous.any()):
            if self.vq_adaptor is None:
                raise ValueError("continuous features given, but this model has no feature adaptor (vq_adaptor)")
            if features is None or features.shape[0] != int(continuous.sum()):
                raise ValueError(
                    f"{int(continuous.sum())} continuous steps need as many feature rows, got {None if features is None else features.shape[0]}"
                )
            added = torch.zeros_like(audio)
            added[continuous] = self.vq_adaptor(features.to(audio.dtype))
            scale = torch.sqrt(torch.tensor(2.0, dtype=audio.dtype, device=audio.device))
            audio = torch.where(continuous.unsqueeze(-1), (audio + added) * scale, audio)
        text = table(text_ids)
        if text_rows is not None:
            text = torch.where(text_rows.view(-1, 1, 1), text, torch.zeros_like(text))
        return audio + text

    def forward(
        self,
        text_ids: Tensor,
        audio_ids: Tensor,
        attention_mask: Tensor,
        position_ids: Tensor,
        cache: ParallelCache | None = None,
        logits_to_keep: int = 0,
        continuous: Tensor | None = None,
        features: Tensor | None = None,
        text_rows: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(rows, steps) token ids of both streams -> text and audio logits of the last `logits_to_keep` steps
        (all when 0), each (rows, kept, vocab). attention_mask covers cached + new steps; continuous/features and
        text_rows: see embed()."""
        x = self.embed(text_ids, audio_ids, continuous, features, text_rows)
        h = self._run(self.backbone, x, attention_mask, position_ids, cache and cache.backbone)
        h_text, h_audio = h, h
        if self.text_branch is not None:
            h_text = self._run(self.text_branch, h, attention_mask, position_ids, cache and cache.text)
        if self.audio_branch is not None:
            h_audio = self._run(self.audio_branch, h, attention_mask, position_ids, cache and cache.audio)
        keep = slice(-logits_to_keep, None) if logits_to_keep else slice(None)
        return self.text_head(self.text_norm(h_text[:, keep])), self.audio_head(self.audio_norm(h_audio[:, keep]))


class ParallelSource(ABC):
    """Where a parallel policy's two-head model and tokenizer come from (the policy's `source`, YAML-reachable)."""

    @abstractmethod
    def build(self) -> tuple[ParallelLM, PreTrainedTokenizerBase]: ...

    def continuous_encoder(self) -> Any:
        """The encoder of continuous prompt-audio features (Kimi-Audio: Whisper), or None for discrete input only.
        Called after build(); see wavalign.policy.kimi_whisper.WhisperFeatures for the interface."""
        return None
