"""configs/vita_audio.yaml on a tiny random checkpoint written to disk with VITA-Audio's layout: a Qwen2 causal LM
whose tokenizer holds GLM-4-Voice's 16384 <|audio_N|> codes and <|begin_of_audio|>/<|end_of_audio|>, and Qwen's chat
markers. Only the paths (and, on this CPU machine, the trainer's device and precision) are overridden."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from conftest import DEBUG_VOCAB, scalars
from wavalign.cli import main
from wavalign.policy.tiny import read_words

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_audio|>", "<|end_of_audio|>", "[UNK]"]
NUM_CODES = 16384  # GLM-4-Voice's codebook, as configs/vita_audio.yaml says


def write_vita_layout_checkpoint(folder: Path) -> None:
    words = ["system", "user", "assistant"] + read_words(DEBUG_VOCAB)
    vocab: dict[str, int] = {}
    for tok in SPECIALS + words + [f"<|audio_{i}|>" for i in range(NUM_CODES)]:
        vocab.setdefault(tok, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="[UNK]",
        additional_special_tokens=SPECIALS[1:5],
    )  # fmt: skip
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=512, tie_word_embeddings=False,
        eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"],
    )  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def test_vita_audio_config_trains_on_a_local_checkpoint(tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    ckpt = tmp_path / "VITA-Audio-tiny"
    write_vita_layout_checkpoint(ckpt)
    runs = tmp_path / "runs"
    main([
        "fit", "--config", "configs/vita_audio.yaml",
        # the three USER lines
        f"--model.policy.init_args.source.init_args.path={ckpt}",
        "--data.init_args.train_file=configs/data/debug_train.jsonl",
        "--data.init_args.val_file=configs/data/debug_val.jsonl",
        # this machine: CPU, float32, a short run
        "--model.policy.init_args.source.init_args.dtype=float32", "--trainer.accelerator=cpu",
        "--trainer.precision=32-true", "--trainer.max_steps=2", "--trainer.val_check_interval=2",
        "--trainer.limit_val_batches=1",
        "--model.sampling.max_new_tokens=24", "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={runs}", "--trainer.logger.init_args.version=0",
    ])  # fmt: skip
    logs = scalars(runs)
    assert {"loss/po", "loss/sft", "gate/lambda", "reward/mean", "rollout/len_speech"} <= set(logs)
    assert len(logs["loss/total"]) == 2
    assert list(runs.rglob("*.ckpt")), "no checkpoint written"
