"""Run the policy's log-prob, reference and rollout paths on VITA-Audio's own model code, not a look-alike.

Builds a tiny random checkpoint from the model files of a VITA-Audio checkout (its Qwen2MTPForCausalLM, with MCTP
layers), under the transformers that code imports under (`pip install -e ".[vita-audio]"`), and checks:
  1. the forward's logits keyword is num_logits_to_keep, and our log-probs of a padded batch equal full forwards
     (float64); the misread the keyword would cause is printed for scale;
  2. its eval-mode forward fails without generation state; our reference (frozen copy, train mode without dropout)
     gives the policy's log-probs, before and after a rollout has left generation state behind;
  3. greedy rollouts equal greedy decoding from the main head by full forwards, while the checkpoint's own MCTP
     schedule emits other tokens.
  python scripts/check_vita_remote_code.py --vita-audio /path/to/VITA-Audio
Exits 1 when a check fails. Nothing from the checkout is copied into this repository; files are read at run time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

from wavalign.policy.base import SamplingConfig
from wavalign.policy.forward import logits_keep_argument
from wavalign.policy.interleaved import InterleavedPolicy
from wavalign.policy.sources import PretrainedCausalLM
from wavalign.policy.tiny import build_word_tokenizer, read_words

MODEL_DIR = "vita_audio/models/qwen2_mtp_v4_48_3"
VOCAB = Path(__file__).resolve().parent.parent / "configs" / "data" / "debug_vocab.txt"
MESSAGES = [{"role": "user", "content": "<|audio|>"}]


def build_checkpoint(vita_audio: Path, folder: Path) -> None:
    for name in ("configuration_qwen2.py", "modeling_qwen2.py"):
        shutil.copy(vita_audio / MODEL_DIR / name, folder / name)
    tokenizer = build_word_tokenizer(read_words(VOCAB), 64)
    tokenizer.save_pretrained(str(folder))
    config = {
        "architectures": ["Qwen2MTPForCausalLM"],
        "model_type": "qwen2_mtp",
        "num_nextn_predict_layers": 2,
        "auto_map": {
            "AutoConfig": "configuration_qwen2.Qwen2MTPConfig",
            "AutoModelForCausalLM": "modeling_qwen2.Qwen2MTPForCausalLM",
        },
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 512,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "use_cache": True,
        "_attn_implementation": "sdpa",
    }
    (folder / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        AutoConfig.from_pretrained(str(folder), trust_remote_code=True), trust_remote_code=True
    )
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    model.save_pretrained(str(folder))
    generation = {
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "mtp_inference_mode": [1, 2],
    }
    (folder / "generation_config.json").write_text(json.dumps(generation))


def check(name: str, ok: bool, detail: str) -> bool:
    print(f"[{'ok' if ok else 'FAIL'}] {name}: {detail}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vita-audio", type=Path, required=True, help="a checkout of VITA-MLLM/VITA-Audio")
    args = parser.parse_args()
    if not (args.vita_audio / MODEL_DIR / "modeling_qwen2.py").is_file():
        parser.error(
            f"{args.vita_audio / MODEL_DIR / 'modeling_qwen2.py'} does not exist: is --vita-audio a VITA-Audio checkout?"
        )
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    if not transformers.__version__.startswith("4.48."):
        print("note: VITA-Audio's model files import under transformers 4.48.3 (pip install -e '.[vita-audio]')")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "vita-tiny"
        folder.mkdir()
        build_checkpoint(args.vita_audio, folder)

        def policy(**options) -> InterleavedPolicy:
            source = PretrainedCausalLM(str(folder), dtype="float32", trust_remote_code=True)
            return InterleavedPolicy(
                source, 64, text_chunks=[1, 4], speech_chunks=[8], train_mode_forward=True, **options
            )

        pol = policy().double()
        keyword = logits_keep_argument(pol.model)
        results.append(check("logits keyword", keyword == "num_logits_to_keep", f"{keyword}"))
        prompts = [pol.prompt_ids(MESSAGES, [[1, 2, 3]]), pol.prompt_ids(MESSAGES, [list(range(4, 15))])]
        replies = [pol.reply_ids("two plus two is four", list(range(20))), pol.reply_ids("four", [5])]
        batch = pol.make_batch(prompts, replies)
        got = pol.token_logprobs(batch).detach()
        worst = 0.0
        with torch.no_grad():
            model = pol.model.train()
            for row, (p, r) in enumerate(zip(prompts, replies)):
                logp = torch.log_softmax(model(input_ids=torch.tensor([p + r]), use_cache=False).logits[0], dim=-1)
                want = torch.stack([logp[len(p) - 1 + t, tok] for t, tok in enumerate(r)])
                worst = max(worst, float((got[row, : len(r)] - want).abs().max()))
            ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1)
            t = batch.completion_ids.shape[1]
            full = model(input_ids=ids, logits_to_keep=t + 1, use_cache=False).logits
            naive = torch.log_softmax(full[:, :-1], -1).gather(2, batch.completion_ids.unsqueeze(-1)).squeeze(-1)
            m = batch.masks.completion.bool()
        results.append(check("log-probs vs full float64 forwards", worst < 1e-10, f"max |diff| {worst:.2e}"))
        print(
            f"       logits_to_keep={t + 1} returned {full.shape[1]} positions; read as the reply's they are off by "
            f"{float((naive[m] - got[m]).abs().mean()):.3f} nats on average"
        )

        pol = policy()
        pol.setup_reference()
        try:
            with torch.no_grad():
                pol._frozen_reference(input_ids=batch.prompt_ids)
            failed = "no error"
        except Exception as error:  # noqa: BLE001 (which error VITA's code raises is what is reported)
            failed = f"{type(error).__name__}: {error}"
        results.append(check("eval-mode forward needs generation state", failed != "no error", failed[:120]))
        before = pol.token_logprobs(batch, reference=True)
        same = torch.equal(before, pol.token_logprobs(batch).detach())
        pol.rollout(prompts, 2, SamplingConfig(max_new_tokens=16))
        after = pol.token_logprobs(batch, reference=True)
        results.append(check("reference = policy, before and after a rollout", same and torch.equal(before, after), ""))

        sampling = SamplingConfig(do_sample=False, max_new_tokens=16)
        rolled = pol.rollout([prompts[0]], 1, sampling).completion_ids[0].tolist()
        with torch.no_grad():
            cur = torch.tensor([prompts[0]])
            for _ in range(16):
                cur = torch.cat([cur, pol.model.train()(input_ids=cur, use_cache=False).logits[:, -1:].argmax(-1)], 1)
        main_head = cur[0, len(prompts[0]) :].tolist()[: len(rolled)]
        results.append(check("greedy rollout = main-head greedy", rolled == main_head, f"{len(rolled)} tokens"))
        try:  # the checkpoint's own schedule runs the MCTP layers (upstream runs them with flash_attention_2)
            with torch.no_grad():
                own = pol.model.eval().generate(torch.tensor([prompts[0]]), do_sample=False, max_new_tokens=16)
            own = own[0, len(prompts[0]) :].tolist()[: len(rolled)]
            print(
                f"       the checkpoint's own schedule [1, 2] gives {'the same' if own == main_head else 'other'} tokens"
            )
        except Exception as error:  # noqa: BLE001 (reported, not a check of ours)
            print(f"       the checkpoint's own schedule [1, 2] fails here: {type(error).__name__}: {str(error)[:100]}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
