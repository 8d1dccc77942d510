"""Tiny on-disk checkpoints with VITA-Audio's layout, for the tests of configs/vita_audio.yaml.

`write_vita_tokenizer`: a word-level tokenizer holding GLM-4-Voice's 16384 <|audio_N|> codes, its begin/end-of-audio
markers, Qwen's chat markers and "\\n" as a token of its own (so chat layouts can be compared token by token).

`write_quirky_vita_checkpoint`: a remote-code model (loaded with trust_remote_code from modeling files written
next to its weights) with the three quirks of VITA-Audio's Qwen2MTPForCausalLM (VITA-MLLM/VITA-Audio,
vita_audio/models/qwen2_mtp_v4_48_3/modeling_qwen2.py) that matter to the recipe:
- its forward takes `num_logits_to_keep` (the pre-4.49 transformers name) and swallows unknown keywords, so
  `logits_to_keep` is ignored and logits come back for every position;
- in eval mode its forward reads generation state (`num_prefill_tokens`, `mtp_inference_mode`) that only its
  `_prepare_cache_for_generation` sets: a plain eval-mode forward raises AttributeError, and one after a
  generate reads the stale schedule;
- it has MCTP heads, and `generation_config.mtp_inference_mode` (pairs of main-head / MCTP token counts, the last
  pair repeating) decides which head emits each generated token; its released generation config asks for MCTP.
Here an MCTP head is a projection of the trunk's last hidden state (upstream runs extra decoder layers); what the
tests need is that its tokens differ from the main head's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import DEBUG_VOCAB
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from wavalign.policy.tiny import read_words

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_audio|>", "<|end_of_audio|>", "[UNK]"]
NUM_CODES = 16384  # GLM-4-Voice's codebook, as configs/vita_audio.yaml says
# upstream's speech-to-speech system prompt, word by word, so it tokenizes without [UNK]
SYSTEM_WORDS = [
    "Your",
    "Name:",
    "Luke",
    "Gender:",
    "male",
    "Respond",
    "in",
    "a",
    "text-audio",
    "interleaved",
    "manner.",
]

CONFIGURATION = """
from transformers import Qwen2Config


class QuirkyMTPConfig(Qwen2Config):
    model_type = "quirky_qwen2_mtp"

    def __init__(self, num_nextn_predict_layers=2, **kwargs):
        self.num_nextn_predict_layers = num_nextn_predict_layers
        super().__init__(**kwargs)
"""

MODELING = """
import torch
from torch import nn
from transformers import GenerationMixin, Qwen2Model, Qwen2PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_quirky import QuirkyMTPConfig

CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


class QuirkyMTPForCausalLM(Qwen2PreTrainedModel, GenerationMixin):
    config_class = QuirkyMTPConfig

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.mtp_projs = nn.ModuleList(
            [nn.Linear(config.hidden_size, config.hidden_size, bias=False) for _ in range(config.num_nextn_predict_layers)]
        )
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, inputs_embeds=None, labels=None,
                use_cache=None, num_logits_to_keep: int = 0, **kwargs):
        head = -1
        if not self.training:  # generation state: AttributeError unless generate() prepared it, as upstream
            n = input_ids.shape[1]
            if self.num_prefill_tokens < 0:
                self.num_prefill_tokens, self.num_seen = n, n
            else:
                self.num_seen += n
            step = self.num_seen - self.num_prefill_tokens
            if self.mtp_inference_mode[step] == "m":
                run = len(self.mtp_inference_mode[: step + 1]) - len(self.mtp_inference_mode[: step + 1].rstrip("m"))
                head = (run - 1) % len(self.mtp_projs)
        kwargs.pop("logits_to_keep", None)  # swallowed, as a forward with **kwargs does
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs)
        hidden = out.last_hidden_state
        if head >= 0:
            hidden = self.mtp_projs[head](hidden)
        logits = self.lm_head(hidden[:, -num_logits_to_keep:, :])
        return CausalLMOutputWithPast(logits=logits, **{CACHE_FIELD: getattr(out, CACHE_FIELD, None)})

    def _prepare_cache_for_generation(self, generation_config, *args, **kwargs):
        mode = getattr(generation_config, "mtp_inference_mode", [1, self.config.num_nextn_predict_layers])
        mains, mtps, schedule = list(mode[::2]), list(mode[1::2]), ""
        while len(schedule) < generation_config.max_new_tokens:
            main = mains.pop(0) if len(mains) > 1 else mains[0]
            mtp = mtps.pop(0) if len(mtps) > 1 else mtps[0]
            schedule += "M" * main + "m" * mtp
        self.mtp_inference_mode, self.num_prefill_tokens, self.num_seen = schedule, -1, 0
        return super()._prepare_cache_for_generation(generation_config, *args, **kwargs)
"""


def write_vita_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    words = ["system", "user", "assistant", "\n"] + SYSTEM_WORDS + read_words(DEBUG_VOCAB)
    vocab: dict[str, int] = {}
    for tok in SPECIALS + words + [f"<|audio_{i}|>" for i in range(NUM_CODES)]:
        vocab.setdefault(tok, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(" "), "removed"), pre_tokenizers.Split(Regex("\n"), "isolated")]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="[UNK]",
        additional_special_tokens=SPECIALS[1:5],
    )
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def write_quirky_vita_checkpoint(folder: Path, seed: int = 0, mtp_scale: float = 8.0) -> Path:
    """Weights, remote code, tokenizer and a generation config asking for MCTP tokens ([1, 2]) with top_k 3."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = write_vita_tokenizer(folder)
    (folder / "configuration_quirky.py").write_text(CONFIGURATION)
    (folder / "modeling_quirky.py").write_text(MODELING)
    config = {
        "architectures": ["QuirkyMTPForCausalLM"],
        "model_type": "quirky_qwen2_mtp",
        "num_nextn_predict_layers": 2,
        "auto_map": {
            "AutoConfig": "configuration_quirky.QuirkyMTPConfig",
            "AutoModelForCausalLM": "modeling_quirky.QuirkyMTPForCausalLM",
        },
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 512,
        "tie_word_embeddings": False,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "attention_dropout": 0.0,
    }
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(
        AutoConfig.from_pretrained(str(folder), trust_remote_code=True), trust_remote_code=True
    )
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
        for proj in model.mtp_projs:
            proj.weight.mul_(mtp_scale)  # MCTP heads that clearly disagree with the main head
    model.save_pretrained(str(folder))
    (folder / "configuration_quirky.py").write_text(CONFIGURATION)  # save_pretrained may copy or drop them
    (folder / "modeling_quirky.py").write_text(MODELING)
    generation = {
        "eos_token_id": [tokenizer.eos_token_id, tokenizer.pad_token_id],
        "pad_token_id": tokenizer.pad_token_id,
        "mtp_inference_mode": [1, 2],
        "top_k": 3,
        "do_sample": True,
        "temperature": 0.7,
    }
    (folder / "generation_config.json").write_text(json.dumps(generation))
    return folder


def write_stock_vita_checkpoint(folder: Path) -> Path:
    """A stock transformers Qwen2 (logits_to_keep) of the same layout; its tokenizer in folder/"tokenizer"."""
    tok = write_vita_tokenizer(folder / "tokenizer")
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(1)
    Qwen2ForCausalLM(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def quirky(tmp_path_factory) -> Path:
    return write_quirky_vita_checkpoint(tmp_path_factory.mktemp("ckpt") / "VITA-quirky")


@pytest.fixture(scope="session")
def stock(tmp_path_factory) -> Path:
    return write_stock_vita_checkpoint(tmp_path_factory.mktemp("ckpt") / "VITA-stock")
