"""A tiny random Kimi-Audio checkpoint on disk, with every part upstream's folder has: config.json with the kimia_*
fields, model.safetensors under Kimi-Audio's tensor names (model.layers, model.mimo_layers, model.vq_adaptor, lm_head,
mimo_output), a whisper-large-v3 folder (a tiny Whisper saved with save_pretrained, its feature extractor with 128
mel bins as large-v3) and a custom-code tokenizer with Kimi's interface (kimi_standin_tokenizer.py); and the
policy configs/kimi_audio.yaml builds on such a folder (kimi_policy)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml
from conftest import DEBUG_VOCAB, ROOT
from safetensors.torch import save_file
from transformers import Qwen2Config, WhisperConfig, WhisperFeatureExtractor, WhisperModel

from wavalign.audio.io import write_wav
from wavalign.policy.kimi_checkpoint import KimiAudioCheckpoint
from wavalign.policy.parallel import ParallelChatTemplate, ParallelPolicy
from wavalign.policy.parallel_model import ParallelLM
from wavalign.policy.tiny import read_words

KIMI_SPECIALS = [
    "<|im_msg_end|>",
    "<|im_user_msg_start|>",
    "<|im_assistant_msg_start|>",
    "<|im_media_begin|>",
    "<|im_media_end|>",
    "<|im_kimia_text_blank|>",
    "<|im_kimia_text_eos|>",
    "<|im_kimia_user_msg_start|>",
    "<|im_kimia_assistant_msg_start|>",
    "<|im_kimia_speech_ct_id|>",
    "<|im_kimia_speech_ctd_id|>",
]
NUM_CODES = 48
WHISPER_WIDTH = 8
FEATURE_DIM = 4 * WHISPER_WIDTH  # kimia_adaptor_input_dim: four 50 Hz Whisper frames per 12.5 Hz step
ADAPTOR_NAMES = {"in_proj": "0", "out_proj": "3", "norm": "4"}


def kimi_name(ours: str, split: int) -> str:
    """Our parameter name -> Kimi-Audio's (the inverse of kimi_checkpoint's map, written out independently)."""
    parts = ours.split(".")
    if parts[0] == "backbone" and parts[1] == "layers":
        return ".".join(["model", "layers", parts[2], *parts[3:]])
    if parts[0] == "text_branch":
        return ".".join(["model", "layers", str(split + int(parts[2])), *parts[3:]])
    if parts[0] == "audio_branch":
        return ".".join(["model", "mimo_layers", *parts[2:]])
    if parts[0] == "vq_adaptor":
        return f"model.vq_adaptor.layers.{ADAPTOR_NAMES[parts[1]]}.{parts[2]}"
    return {
        "backbone.embed_tokens.weight": "model.embed_tokens.weight",
        "text_norm.weight": "model.norm.weight",
        "audio_norm.weight": "model.mimo_norm.weight",
        "text_head.weight": "lm_head.weight",
        "audio_head.weight": "mimo_output.weight",
    }[ours]


def write_tokenizer(folder: Path, offset: int) -> dict[str, int]:
    """Words, Kimi's specials, then reserved specials up to the speech offset (every text id decodes, as in Kimi's)."""
    words = read_words(DEBUG_VOCAB)
    names = KIMI_SPECIALS + [f"<|reserved_token_{i}|>" for i in range(offset - len(words) - len(KIMI_SPECIALS))]
    special = {tok: len(words) + i for i, tok in enumerate(names)}
    (folder / "standin_vocab.json").write_text(json.dumps({"words": words, "special": special}))
    shutil.copy(Path(__file__).with_name("kimi_standin_tokenizer.py"), folder / "tokenization_standin.py")
    auto = {"AutoTokenizer": ["tokenization_standin.KimiStandInTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": auto, "tokenizer_class": "KimiStandInTokenizer"})
    )
    return special


def write_whisper(folder: Path) -> None:
    config = WhisperConfig(
        vocab_size=64,
        num_mel_bins=128,
        d_model=WHISPER_WIDTH,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        max_source_positions=1500,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    torch.manual_seed(3)
    WhisperModel(config).save_pretrained(str(folder))
    WhisperFeatureExtractor(feature_size=128).save_pretrained(str(folder))


def write_tiny_kimi(folder: Path, seed: int = 0) -> dict:
    """Write the checkpoint; returns {offset, specials, split}."""
    folder.mkdir(parents=True, exist_ok=True)
    offset = 64  # kimia_token_offset: text ids (and specials) below, speech codes from here
    special = write_tokenizer(folder, offset)
    config = Qwen2Config(
        vocab_size=offset + NUM_CODES,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        pad_token_id=None,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ParallelLM(config, text_layers=1, audio_layers=1, feature_dim=FEATURE_DIM)
        for p in model.vq_adaptor.parameters():  # random biases and norm affine too, so the map is pinned
            torch.nn.init.normal_(p, std=0.3)
    split = config.num_hidden_layers
    save_file(
        {kimi_name(k, split): v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors")
    )
    raw = {k: v for k, v in config.to_dict().items() if k != "layer_types"}
    raw.update(
        model_type="moonshot_kimia",
        architectures=["MoonshotKimiaForCausalLM"],
        num_hidden_layers=split + 1,
        kimia_mimo_layers=1,
        kimia_mimo_transformer_from_layer_index=split - 1,
        kimia_token_offset=offset,
        use_whisper_feature=True,
        kimia_adaptor_input_dim=FEATURE_DIM,
        kimia_media_begin=special["<|im_media_begin|>"],
        kimia_media_end=special["<|im_media_end|>"],
    )
    (folder / "config.json").write_text(json.dumps(raw))
    write_whisper(folder / "whisper-large-v3")
    return {"offset": offset, "special": special, "split": split}


def write_noise(path: Path, seconds: float, seed: int = 0, sample_rate: int = 16000) -> Path:
    rng = np.random.default_rng(seed)
    write_wav(path, (0.1 * rng.standard_normal(int(seconds * sample_rate))).astype(np.float32), sample_rate)
    return path


def kimi_policy(folder: Path, whisper_features: bool = True, dtype: str = "float32", **overrides) -> ParallelPolicy:
    """The policy exactly as configs/kimi_audio.yaml sets it up, on the tiny checkpoint (codebook and offset resized);
    overrides: policy arguments set otherwise."""
    args = yaml.safe_load((ROOT / "configs" / "kimi_audio.yaml").read_text())["model"]["policy"]["init_args"]
    source = KimiAudioCheckpoint(str(folder), dtype=dtype, trust_remote_code=True, whisper_features=whisper_features)
    kwargs = {k: v for k, v in args.items() if k not in ("source", "chat", "gradient_checkpointing")}
    kwargs.update(num_speech_tokens=NUM_CODES, speech_offset=64, **overrides)
    return ParallelPolicy(source, chat=ParallelChatTemplate(**args["chat"]), **kwargs)
