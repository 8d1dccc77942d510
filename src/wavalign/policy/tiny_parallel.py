"""A tiny random parallel-stream model with Kimi-Audio's token scheme, built from config with a seed (no download).

Same layout as Kimi-Audio, at toy size: one shared vocabulary (text words, contiguous speech codes <|s_i|>, specials),
a text-stream blank filler and a text-stream EOS distinct from the audio stream's end-of-message marker, role markers
and media begin/end on the audio stream, a shared backbone and branch-specific layers for the text and audio heads.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerFast, Qwen2Config

from wavalign.policy.parallel_model import ParallelLM, ParallelSource
from wavalign.policy.tiny import build_word_tokenizer, read_words

# Kimi-Audio's counterparts: <|im_kimia_text_blank|>, <|im_kimia_text_eos|>, <|im_msg_end|>, <|im_kimia_speech_ctd_id|>
PARALLEL_SPECIAL_TOKENS = ["<|text_blank|>", "<|text_eos|>", "<|msg_end|>", "<|speech_ctd|>"]


def build_parallel_tokenizer(vocab_file: str, num_speech_tokens: int) -> PreTrainedTokenizerFast:
    """The interleaved tiny tokenizer (roles, <|begin_audio|>/<|end_audio|>, codes, words) plus the stream specials."""
    tokenizer = build_word_tokenizer(read_words(vocab_file), num_speech_tokens)
    tokenizer.add_tokens(PARALLEL_SPECIAL_TOKENS, special_tokens=True)
    return tokenizer


class TinyParallel(ParallelSource):
    """A randomly initialised two-head model (shared backbone, text and audio branches) with a word-level tokenizer.

    Args:
        vocab_file: Text file with one word per line (blank lines and lines starting with # are skipped): the
            tokenizer's words besides the specials and speech codes; the embedded world writes it.
        num_speech_tokens: Size of the speech codebook: speech tokens <|s_0|> .. <|s_{N-1}|>; must match the codec.
        hidden_size: Width of the transformer (embedding and residual size).
        shared_layers: Depth of the backbone both heads share (Kimi-Audio: 22).
        text_layers: Layers of the text head's own branch (Kimi-Audio: 6).
        audio_layers: Layers of the audio head's own branch (Kimi-Audio: 6).
        num_heads: Attention heads per layer; must divide hidden_size.
        num_kv_heads: Key/value heads per layer (grouped-query attention); must divide num_heads.
        intermediate_size: Width of each layer's MLP.
        max_positions: Longest sequence (prompt plus reply) in steps that the rotary positions are set up for.
        seed: Random seed of the initial weights: the same seed builds the same model.
    """

    def __init__(
        self,
        vocab_file: str,
        num_speech_tokens: int = 256,
        hidden_size: int = 128,
        shared_layers: int = 2,
        text_layers: int = 1,
        audio_layers: int = 1,
        num_heads: int = 4,
        num_kv_heads: int = 2,
        intermediate_size: int = 256,
        max_positions: int = 2048,
        seed: int = 0,
    ) -> None:
        self.vocab_file, self.num_speech_tokens, self.seed = vocab_file, num_speech_tokens, seed
        self.text_layers, self.audio_layers = text_layers, audio_layers
        self.shape = dict(
            hidden_size=hidden_size,
            num_hidden_layers=shared_layers,
            num_attention_heads=num_heads,
            num_key_value_heads=num_kv_heads,
            intermediate_size=intermediate_size,
            max_position_embeddings=max_positions,
        )

    def build(self) -> tuple[ParallelLM, PreTrainedTokenizerFast]:
        tokenizer = build_parallel_tokenizer(self.vocab_file, self.num_speech_tokens)
        config = Qwen2Config(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=None, **self.shape
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = ParallelLM(config, self.text_layers, self.audio_layers)
        return model, tokenizer
