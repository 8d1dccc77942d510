"""Tiny random Qwen2-style speech LLMs with a word-level tokenizer: text words + codec tokens + boundaries.

Built from config with a seed, no download; the same token scheme as real interleaved models (speech codes as
contiguous added tokens <|s_i|>, begin/end-of-audio markers, role tokens), so every code path is exercised.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedModel, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from wavalign.policy.sources import ModelSource

SPECIAL_TOKENS = [
    "<pad>",
    "<unk>",
    "<eos>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|begin_audio|>",
    "<|end_audio|>",
]
SPEECH_TOKEN = "<|s_{}|>"


def read_words(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file {path} does not exist")
    words = [w.strip().lower() for w in path.read_text(encoding="utf-8").splitlines()]
    words = sorted({w for w in words if w and not w.startswith("#")})
    for w in words:
        if " " in w or w in SPECIAL_TOKENS:
            raise ValueError(f"{path}: vocabulary entry {w!r} must be one word and not a special token")
    return words


def build_word_tokenizer(words: list[str], num_speech_tokens: int) -> PreTrainedTokenizerFast:
    """Specials first, then the speech codes (contiguous ids), then the words."""
    vocab: dict[str, int] = {}
    for tok in SPECIAL_TOKENS + [SPEECH_TOKEN.format(i) for i in range(num_speech_tokens)] + words:
        vocab.setdefault(tok, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.Replace(Regex(r"[^a-z0-9' ]"), " ")])
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<eos>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )


class TinyQwen2(ModelSource):
    """A randomly initialised Qwen2 of the given shape with a word-level tokenizer from `vocab_file`.

    Args:
        vocab_file: Text file with one word per line (blank lines and lines starting with # are skipped): the
            tokenizer's words besides the specials and speech codes; the embedded world writes it.
        num_speech_tokens: Size of the speech codebook: speech tokens <|s_0|> .. <|s_{N-1}|>; must match the codec.
        hidden_size: Width of the transformer (embedding and residual size).
        num_layers: Number of transformer layers.
        num_heads: Attention heads per layer; must divide hidden_size.
        num_kv_heads: Key/value heads per layer (grouped-query attention); must divide num_heads.
        intermediate_size: Width of each layer's MLP.
        max_positions: Longest sequence (prompt plus reply) in tokens that the rotary positions are set up for.
        seed: Random seed of the initial weights: the same seed builds the same model.
    """

    def __init__(
        self,
        vocab_file: str,
        num_speech_tokens: int = 256,
        hidden_size: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        num_kv_heads: int = 2,
        intermediate_size: int = 256,
        max_positions: int = 2048,
        seed: int = 0,
    ) -> None:
        self.vocab_file, self.num_speech_tokens, self.seed = vocab_file, num_speech_tokens, seed
        self.shape = dict(
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            num_key_value_heads=num_kv_heads,
            intermediate_size=intermediate_size,
            max_position_embeddings=max_positions,
        )

    def build(self) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
        tokenizer = build_word_tokenizer(read_words(self.vocab_file), self.num_speech_tokens)
        config = Qwen2Config(
            vocab_size=len(tokenizer),
            tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
            **self.shape,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = Qwen2ForCausalLM(config)
        return model, tokenizer
