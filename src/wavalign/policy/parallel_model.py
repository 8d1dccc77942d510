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

import inspect
import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoTokenizer, DynamicCache, PreTrainedTokenizerBase, Qwen2Config, Qwen2Model
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm, Qwen2RotaryEmbedding
from transformers.utils import logging as hf_logging

from wavalign.policy.sources import DTYPES

# transformers renamed the cache argument (past_key_values -> cache); pass whichever this version takes
_CACHE_KW = "cache" if "cache" in inspect.signature(Qwen2Model.forward).parameters else "past_key_values"


def _config_with(config: Qwen2Config, **changes) -> Qwen2Config:
    values = config.to_dict()
    values.update(changes)
    values.pop("layer_types", None)  # re-derived from num_hidden_layers
    out = Qwen2Config(**values)
    out._attn_implementation = config._attn_implementation
    return out


def _stack(config: Qwen2Config, layers: int, embeddings: bool) -> Qwen2Model:
    """A Qwen2Model of `layers` decoder layers without its final norm (the branches own their norms)."""
    changes = {"num_hidden_layers": layers} if embeddings else {"num_hidden_layers": layers, "vocab_size": 1, "pad_token_id": None}
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


class ParallelLM(nn.Module):
    """config describes the backbone (num_hidden_layers = shared layers); text_layers / audio_layers are the
    branch-specific decoder layers (0 = the head reads the backbone's output through its norm)."""

    def __init__(self, config: Qwen2Config, text_layers: int = 0, audio_layers: int = 0) -> None:
        super().__init__()
        if text_layers < 0 or audio_layers < 0 or config.num_hidden_layers < 1:
            raise ValueError("the backbone needs >= 1 layer and the branches >= 0 layers")
        self.config = config
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

    @staticmethod
    def _run(stack: Qwen2Model, x: Tensor, attention_mask: Tensor, position_ids: Tensor, cache: DynamicCache | None) -> Tensor:
        kwargs = {_CACHE_KW: cache} if cache is not None else {}
        out = stack(inputs_embeds=x, attention_mask=attention_mask, position_ids=position_ids, use_cache=cache is not None, **kwargs)
        return out.last_hidden_state

    def forward(
        self,
        text_ids: Tensor,
        audio_ids: Tensor,
        attention_mask: Tensor,
        position_ids: Tensor,
        cache: ParallelCache | None = None,
        logits_to_keep: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """(rows, steps) token ids of both streams -> text and audio logits of the last `logits_to_keep` steps
        (all when 0), each (rows, kept, vocab). attention_mask covers cached + new steps."""
        embed = self.backbone.embed_tokens
        h = self._run(self.backbone, embed(text_ids) + embed(audio_ids), attention_mask, position_ids, cache and cache.backbone)
        h_text, h_audio = h, h
        if self.text_branch is not None:
            h_text = self._run(self.text_branch, h, attention_mask, position_ids, cache and cache.text)
        if self.audio_branch is not None:
            h_audio = self._run(self.audio_branch, h, attention_mask, position_ids, cache and cache.audio)
        keep = slice(-logits_to_keep, None) if logits_to_keep else slice(None)
        return self.text_head(self.text_norm(h_text[:, keep])), self.audio_head(self.audio_norm(h_audio[:, keep]))


class ParallelSource(ABC):
    """Where a parallel policy's model and tokenizer come from (YAML-reachable, one method)."""

    @abstractmethod
    def build(self) -> tuple[ParallelLM, PreTrainedTokenizerBase]: ...


# ---- Kimi-Audio checkpoints ------------------------------------------------------------------------------------------
# Checkpoint tensor name -> ours. `split` = kimia_mimo_transformer_from_layer_index + 1 (22 for Kimi-Audio-7B).
#   model.embed_tokens.*          -> backbone.embed_tokens.*        (one table for both streams)
#   model.layers.{i<split}.*      -> backbone.layers.{i}.*
#   model.layers.{i>=split}.*     -> text_branch.layers.{i-split}.*
#   model.norm.*                  -> text_norm.*
#   model.mimo_layers.{j}.*       -> audio_branch.layers.{j}.*
#   model.mimo_norm.*             -> audio_norm.*
#   lm_head.*                     -> text_head.*
#   mimo_output.*                 -> audio_head.*
#   model.vq_adaptor.*            -> unused: Kimi-Audio adds Whisper features over the user's audio through this
#                                    adaptor; here prompt speech enters as discrete tokens only.
KIMI_UNUSED_PREFIXES = ("model.vq_adaptor.",)


def kimi_weight_name(name: str, split: int) -> str | None:
    """Our parameter name for a Kimi-Audio checkpoint tensor; None for tensors the policy does not use."""
    if name.startswith(KIMI_UNUSED_PREFIXES) or name.endswith("rotary_emb.inv_freq"):
        return None
    if m := re.fullmatch(r"model\.layers\.(\d+)\.(.+)", name):
        i, rest = int(m.group(1)), m.group(2)
        return f"backbone.layers.{i}.{rest}" if i < split else f"text_branch.layers.{i - split}.{rest}"
    if m := re.fullmatch(r"model\.mimo_layers\.(\d+)\.(.+)", name):
        return f"audio_branch.layers.{m.group(1)}.{m.group(2)}"
    fixed = {
        "model.embed_tokens.weight": "backbone.embed_tokens.weight",
        "model.norm.weight": "text_norm.weight",
        "model.mimo_norm.weight": "audio_norm.weight",
        "lm_head.weight": "text_head.weight",
        "mimo_output.weight": "audio_head.weight",
    }
    if name not in fixed:
        raise KeyError(f"unknown Kimi-Audio checkpoint tensor {name!r}: the weight map in parallel_model.py is out of date")
    return fixed[name]


def kimi_config(raw: dict, attn_implementation: str | None = None) -> tuple[Qwen2Config, int, int]:
    """The backbone config and the text/audio branch depths from a Kimi-Audio config.json."""
    for key in ("num_hidden_layers", "kimia_mimo_layers", "kimia_mimo_transformer_from_layer_index"):
        if key not in raw:
            raise ValueError(f"config.json has no {key!r}: is this a Kimi-Audio checkpoint?")
    split = int(raw["kimia_mimo_transformer_from_layer_index"]) + 1
    values = {k: v for k, v in raw.items() if k not in ("architectures", "auto_map", "model_type", "torch_dtype", "dtype")}
    values.update(num_hidden_layers=split, tie_word_embeddings=False)
    if attn_implementation:
        values["attn_implementation"] = attn_implementation
    return Qwen2Config(**values), int(raw["num_hidden_layers"]) - split, int(raw["kimia_mimo_layers"])


def _checkpoint_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / s for s in shards]
    if (path / "model.safetensors").is_file():
        return [path / "model.safetensors"]
    raise FileNotFoundError(f"{path} holds no model.safetensors(.index.json): download the full Kimi-Audio checkpoint")


def _resolve_device(device_map: str | None) -> torch.device:
    if device_map in (None, "cpu"):
        return torch.device("cpu")
    if device_map == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device_map)


class KimiAudioCheckpoint(ParallelSource):
    """Kimi-Audio weights from a local folder (e.g. moonshotai/Kimi-Audio-7B-Instruct downloaded with
    `huggingface-cli download`), read straight from its safetensors with the explicit name map above, so the model
    code is ours (no remote code for the transformer). trust_remote_code only affects the tokenizer, which Kimi-Audio
    ships as custom code. device_map: None/'cpu' (Lightning moves the model), 'cuda', 'cuda:N' or 'auto' (the
    first GPU); sharding over several GPUs is the Lightning strategy's job (FSDP/DeepSpeed), not the loader's."""

    def __init__(
        self,
        path: str,
        tokenizer_path: str | None = None,
        dtype: str = "bfloat16",
        trust_remote_code: bool = False,
        device_map: str | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        if dtype not in DTYPES or dtype == "auto":
            raise ValueError(f"dtype must be one of {sorted(set(DTYPES) - {'auto'})}, got {dtype!r}")
        self.path, self.tokenizer_path = Path(path), Path(tokenizer_path or path)
        self.dtype, self.trust_remote_code = DTYPES[dtype], trust_remote_code
        self.device_map, self.attn_implementation = device_map, attn_implementation

    def build(self) -> tuple[ParallelLM, PreTrainedTokenizerBase]:
        from safetensors import safe_open

        for p in {self.path, self.tokenizer_path}:
            if not p.exists():
                raise FileNotFoundError(f"model path {str(p)!r} does not exist: download the checkpoint and set its folder in the config")
        config, text_layers, audio_layers = kimi_config(json.loads((self.path / "config.json").read_text()), self.attn_implementation)
        split = config.num_hidden_layers
        device = _resolve_device(self.device_map)
        with torch.device("meta"):
            model = ParallelLM(config, text_layers, audio_layers)
        state: dict[str, Tensor] = {}
        for file in _checkpoint_files(self.path):
            with safe_open(str(file), framework="pt", device=str(device)) as f:
                for name in f.keys():
                    ours = kimi_weight_name(name, split)
                    if ours is not None:
                        state[ours] = f.get_tensor(name).to(self.dtype)
        missing = set(model.state_dict()) - state.keys()
        if missing:
            raise ValueError(f"{self.path}: {len(missing)} weights missing from the checkpoint, e.g. {sorted(missing)[:3]}")
        model.load_state_dict(state, strict=True, assign=True)
        for stack in model.stacks:  # non-persistent rotary buffers are not in the checkpoint: build them for real
            stack.rotary_emb = Qwen2RotaryEmbedding(config=stack.config).to(device)
        tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer_path), trust_remote_code=self.trust_remote_code)
        return model, tokenizer
