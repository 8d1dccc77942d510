"""Kimi-Audio checkpoints from a local folder: the transformer weights by an explicit name map, the tokenizer, and
the Whisper encoder of the continuous prompt-audio input (wavalign.policy.kimi_whisper)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import Tensor
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Qwen2Config
from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

from wavalign.policy.kimi_whisper import WhisperFeatures
from wavalign.policy.parallel_model import ParallelLM, ParallelSource
from wavalign.policy.sources import DTYPES

# Checkpoint tensor name -> ours. `split` = kimia_mimo_transformer_from_layer_index + 1 (22 for Kimi-Audio-7B).
#   model.embed_tokens.*          -> backbone.embed_tokens.*        (one table for both streams)
#   model.layers.{i<split}.*      -> backbone.layers.{i}.*
#   model.layers.{i>=split}.*     -> text_branch.layers.{i-split}.*
#   model.norm.*                  -> text_norm.*
#   model.mimo_layers.{j}.*       -> audio_branch.layers.{j}.*
#   model.mimo_norm.*             -> audio_norm.*
#   lm_head.*                     -> text_head.*
#   mimo_output.*                 -> audio_head.*
#   model.vq_adaptor.layers.0.*   -> vq_adaptor.in_proj.*   (Linear; layers.1 is SiLU, layers.2 a p=0 dropout)
#   model.vq_adaptor.layers.3.*   -> vq_adaptor.out_proj.*  (Linear)
#   model.vq_adaptor.layers.4.*   -> vq_adaptor.norm.*      (LayerNorm)
#   With whisper_features=False (discrete prompt speech only) the vq_adaptor tensors are left unloaded.
ADAPTOR_PARTS = {"0": "in_proj", "3": "out_proj", "4": "norm"}


def kimi_weight_name(name: str, split: int, with_adaptor: bool = False) -> str | None:
    """Our parameter name for a Kimi-Audio checkpoint tensor; None for tensors the policy does not use."""
    if name.endswith("rotary_emb.inv_freq"):
        return None
    if m := re.fullmatch(r"model\.vq_adaptor\.layers\.(\d+)\.(weight|bias)", name):
        if not with_adaptor:
            return None
        if m.group(1) not in ADAPTOR_PARTS:
            raise KeyError(
                f"unknown Kimi-Audio vq_adaptor tensor {name!r}: the weight map in kimi_checkpoint.py is out of date"
            )
        return f"vq_adaptor.{ADAPTOR_PARTS[m.group(1)]}.{m.group(2)}"
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
        raise KeyError(
            f"unknown Kimi-Audio checkpoint tensor {name!r}: the weight map in kimi_checkpoint.py is out of date"
        )
    return fixed[name]


KIMI_ONLY_KEYS = ("architectures", "auto_map", "model_type", "torch_dtype", "dtype")


def kimi_config(raw: dict, attn_implementation: str | None = None) -> tuple[Qwen2Config, int, int]:
    """The backbone config and the text/audio branch depths from a Kimi-Audio config.json."""
    for key in ("num_hidden_layers", "kimia_mimo_layers", "kimia_mimo_transformer_from_layer_index"):
        if key not in raw:
            raise ValueError(f"config.json has no {key!r}: is this a Kimi-Audio checkpoint?")
    split = int(raw["kimia_mimo_transformer_from_layer_index"]) + 1
    values = {k: v for k, v in raw.items() if k not in KIMI_ONLY_KEYS}
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
    code is ours (no remote code for the transformer). Sharding over several GPUs is the Lightning strategy's job
    (FSDP/DeepSpeed), not the loader's.

    Args:
        path: Local folder of the checkpoint (config.json, model*.safetensors, tokenizer files, whisper-large-v3/).
            Its tokenizer code needs tiktoken: pip install -e '.[kimi-audio]'.
        tokenizer_path: Folder of the tokenizer when it is not in `path`; None uses `path`.
        dtype: Weight dtype: "bfloat16" (the checkpoint's own), "float16" or "float32" ("auto" is not accepted).
        trust_remote_code: Run the tokenizer's custom code, which Kimi-Audio ships (true for its checkpoints); the
            transformer itself never runs remote code.
        device_map: Where the weights are loaded: None or "cpu" (Lightning moves the model, the usual choice),
            "cuda", "cuda:N" or "auto" (the first GPU).
        attn_implementation: Attention kernel, e.g. "sdpa" or "flash_attention_2" (needs flash-attn); None uses
            transformers' default.
        whisper_features: True (Kimi-Audio's own input path): the vq_adaptor is loaded and the prompt's speech codes
            are fed with Whisper features of the raw prompt audio; False: codes alone (the vq_adaptor and Whisper
            folder are not read).
        whisper_path: Folder of the Whisper-large-v3 encoder for whisper_features; None uses
            <path>/whisper-large-v3.
    """

    def __init__(
        self,
        path: str,
        tokenizer_path: str | None = None,
        dtype: str = "bfloat16",
        trust_remote_code: bool = False,
        device_map: str | None = None,
        attn_implementation: str | None = None,
        whisper_features: bool = True,
        whisper_path: str | None = None,
    ) -> None:
        if dtype not in DTYPES or dtype == "auto":
            raise ValueError(f"dtype must be one of {sorted(set(DTYPES) - {'auto'})}, got {dtype!r}")
        self.path, self.tokenizer_path = Path(path), Path(tokenizer_path or path)
        self.dtype, self.trust_remote_code = DTYPES[dtype], trust_remote_code
        self.device_map, self.attn_implementation = device_map, attn_implementation
        self.whisper_features = whisper_features
        self.whisper_path = Path(whisper_path) if whisper_path else self.path / "whisper-large-v3"
        self._feature_dim = 0

    def _raw_config(self) -> dict:
        for p in {self.path, self.tokenizer_path}:
            if not p.exists():
                raise FileNotFoundError(
                    f"model path {str(p)!r} does not exist: download the checkpoint and set its folder in the config"
                )
        raw = json.loads((self.path / "config.json").read_text())
        if self.whisper_features:
            if not raw.get("use_whisper_feature", False) or "kimia_adaptor_input_dim" not in raw:
                raise ValueError(
                    f"{self.path}/config.json: whisper_features=True needs use_whisper_feature: true and "
                    "kimia_adaptor_input_dim (Kimi-Audio's checkpoints have both); set whisper_features: false otherwise"
                )
            self._feature_dim = int(raw["kimia_adaptor_input_dim"])
        return raw

    def build(self) -> tuple[ParallelLM, PreTrainedTokenizerBase]:
        from safetensors import safe_open

        config, text_layers, audio_layers = kimi_config(self._raw_config(), self.attn_implementation)
        split = config.num_hidden_layers
        device = _resolve_device(self.device_map)
        with torch.device("meta"):
            model = ParallelLM(config, text_layers, audio_layers, feature_dim=self._feature_dim)
        state: dict[str, Tensor] = {}
        for file in _checkpoint_files(self.path):
            with safe_open(str(file), framework="pt", device=str(device)) as f:
                for name in f.keys():
                    ours = kimi_weight_name(name, split, with_adaptor=self.whisper_features)
                    if ours is not None:
                        state[ours] = f.get_tensor(name).to(self.dtype)
        missing = set(model.state_dict()) - state.keys()
        if missing:
            raise ValueError(
                f"{self.path}: {len(missing)} weights missing from the checkpoint, e.g. {sorted(missing)[:3]}"
            )
        model.load_state_dict(state, strict=True, assign=True)
        for stack in model.stacks:  # non-persistent rotary buffers are not in the checkpoint: build them for real
            stack.rotary_emb = Qwen2RotaryEmbedding(config=stack.config).to(device)
        return model, self._tokenizer()

    def _tokenizer(self) -> PreTrainedTokenizerBase:
        """The checkpoint's tokenizer. Kimi-Audio's is custom code on tiktoken, which transformers does not install:
        a missing tiktoken is named here with the extra that installs it, not left to a bare import error."""
        try:
            return AutoTokenizer.from_pretrained(str(self.tokenizer_path), trust_remote_code=self.trust_remote_code)
        except ImportError as error:
            if "tiktoken" not in str(error):
                raise
            raise ImportError(
                f"the tokenizer code of {self.tokenizer_path} needs tiktoken, which is not installed "
                f"({error}): pip install -e '.[kimi-audio]'"
            ) from error

    def continuous_encoder(self) -> WhisperFeatures | None:
        if not self.whisper_features:
            return None
        if not self._feature_dim:
            self._raw_config()
        return WhisperFeatures(self.whisper_path, self._feature_dim, dtype=self.dtype)
