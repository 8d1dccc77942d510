"""configs/vita_audio.yaml's policy on a tiny remote-code model with VITA-Audio's quirks (see vita_fixtures.py), and on
a stock transformers Qwen2 of the same layout: log-probs, the reference forward, and which head rollouts come from.

Upstream behaviour pinned here (VITA-MLLM/VITA-Audio, vita_audio/models/qwen2_mtp_v4_48_3/modeling_qwen2.py,
Qwen2MTPForCausalLM.forward / _prepare_mtp_for_generation; MM-Speech/WavAlign, trainer/vita_audio_rl_sft_trainer_
clean.py _setup_generation_config and trainer/vita_audio_rl_sft_trainer_masked.py _compute_rl_loss_from_logits)."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from packaging.version import Version
from vita_fixtures import quirky, stock, write_quirky_vita_checkpoint, write_stock_vita_checkpoint  # noqa: F401
from vita_policy import vita_policy

from wavalign.policy.base import SamplingConfig
from wavalign.policy.forward import logits_keep_argument
from wavalign.policy.generation import rollout_generation_config
from wavalign.policy.lora import LoraSettings

MESSAGES = [{"role": "user", "content": "<|audio|>"}]
# stock Qwen2's keyword: the old one up to transformers 4.48 (VITA-Audio's pin), the new one since 4.49
STOCK_KEYWORD = "logits_to_keep" if Version(transformers.__version__).release >= (4, 49) else "num_logits_to_keep"


def batch_of_two(policy):
    """Prompts of different lengths (left padding) and replies of different lengths (right padding)."""
    prompts = [policy.prompt_ids(MESSAGES, [[1, 2, 3]]), policy.prompt_ids(MESSAGES, [list(range(4, 15))])]
    replies = [policy.reply_ids("two plus two is four", list(range(20))), policy.reply_ids("four", [5])]
    return prompts, replies, policy.make_batch(prompts, replies)


@pytest.mark.parametrize("which, keyword", [("quirky", "num_logits_to_keep"), ("stock", STOCK_KEYWORD)])
def test_logprobs_equal_a_full_float64_forward_under_either_keyword(which, keyword, request):
    """Old keyword + swallowed kwargs (VITA, and stock Qwen2 on transformers 4.46-4.48) or the new one (>= 4.49).
    Also passes under transformers 4.48.3 (the vita-audio extra), where stock Qwen2 takes the old keyword."""
    folder = request.getfixturevalue(which)
    policy = vita_policy(folder, tokenizer=folder / "tokenizer" if which == "stock" else None).double()
    assert logits_keep_argument(policy.model) == keyword
    prompts, replies, batch = batch_of_two(policy)
    got = policy.token_logprobs(batch)
    model = policy.model.train()  # no dropout in these models: train mode is the same function as eval
    with torch.no_grad():
        for row, (p, r) in enumerate(zip(prompts, replies)):
            logp = torch.log_softmax(model(input_ids=torch.tensor([p + r])).logits[0], dim=-1)
            assert logp.dtype == torch.float64
            want = torch.stack([logp[len(p) - 1 + t, tok] for t, tok in enumerate(r)])
            assert torch.allclose(got[row, : len(r)].detach(), want, atol=1e-12, rtol=0)
    assert batch.masks.completion[1].sum() == len(replies[1])  # "<|im_end|>\n": the suffix is trained too


def test_the_quirk_bites_without_the_old_keyword(quirky):
    """logits_to_keep is swallowed: all positions come back, and reading them as the reply's is wrong by a lot."""
    policy = vita_policy(quirky).double()
    _, _, batch = batch_of_two(policy)
    ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1)
    t = batch.completion_ids.shape[1]
    with torch.no_grad():
        logits = policy.model.train()(input_ids=ids, logits_to_keep=t + 1).logits
    assert logits.shape[1] == ids.shape[1] != t + 1
    naive = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, batch.completion_ids.unsqueeze(-1)).squeeze(-1)
    right = policy.token_logprobs(batch).detach()
    m = batch.masks.completion.bool()
    assert (naive[m] - right[m]).abs().mean() > 0.05  # 0.12 nats here, on a near-uniform random model


def test_reference_runs_in_train_mode_where_eval_mode_needs_generation_state(quirky):
    """The official trainer calls ref_model.train() before its reference forward; an eval-mode forward raises."""
    policy = vita_policy(quirky)  # full fine-tuning: the reference is a frozen copy, kept in eval mode
    policy.setup_reference()
    _, _, batch = batch_of_two(policy)
    with pytest.raises(AttributeError, match="num_prefill_tokens"), torch.no_grad():
        policy._frozen_reference(input_ids=batch.prompt_ids)
    ref = policy.token_logprobs(batch, reference=True)
    assert torch.equal(ref, policy.token_logprobs(batch).detach())
    assert not policy._frozen_reference.training  # its mode is restored
    policy.rollout([batch.prompt_ids[0].tolist()], 2, SamplingConfig(max_new_tokens=6))  # leaves generation state
    assert torch.equal(policy.token_logprobs(batch, reference=True), ref)  # stale state is not read either

    eval_mode = vita_policy(quirky, train_mode_forward=False)
    eval_mode.setup_reference()
    with pytest.raises(AttributeError, match="num_prefill_tokens"):
        eval_mode.token_logprobs(batch, reference=True)


def test_rollouts_come_from_the_main_head_starting_from_the_checkpoint_generation_config(quirky):
    """[8192, 0] is VITA-Audio's main-head-only schedule; the checkpoint's own ([1, 2] here) emits MCTP tokens."""
    policy = vita_policy(quirky)
    sampling = SamplingConfig(do_sample=False, max_new_tokens=12)
    config = rollout_generation_config(
        policy.model, sampling, policy.spec.all_stop_ids, policy.spec.pad_id, policy.mtp_inference_mode
    )
    assert config.mtp_inference_mode == [8192, 0] and config.top_k == 3  # top_k: the checkpoint's
    stops = [policy.tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    assert config.eos_token_id == stops and config.max_new_tokens == 12  # both EOS ids of its generation config
    assert policy.model.generation_config.mtp_inference_mode == [1, 2]  # the model's own config is left alone

    prompt = policy.prompt_ids(MESSAGES, [[7, 8, 9]])
    rolled = policy.rollout([prompt], 1, sampling).completion_ids[0].tolist()
    ids = torch.tensor([prompt])
    with torch.no_grad():
        main = ids
        for _ in range(12):  # greedy from the main head, by full train-mode forwards
            main = torch.cat([main, policy.model.train()(input_ids=main).logits[:, -1:].argmax(-1)], dim=1)
        own = policy.model.eval().generate(ids, do_sample=False, max_new_tokens=12)
    main, own = main[0, len(prompt) :].tolist(), own[0, len(prompt) :].tolist()
    n = len(rolled)
    assert n == 12 or rolled[-1] == policy.spec.eos_id
    assert rolled == main[:n]
    assert own[:n] != main[:n]


def test_mctp_models_refuse_the_static_decoders(quirky):
    with pytest.raises(ValueError, match="MCTP layers"):
        vita_policy(quirky, decoder="static")


def test_lora_reference_and_rollouts_through_the_remote_code(quirky):
    """Under LoRA the reference is the same model with its adapters off; in eval mode (validation) it needs the
    train-mode forward too, and rollouts still read the generation config through the peft wrapper."""
    policy = vita_policy(quirky, lora=LoraSettings(r=4, alpha=8))
    config = rollout_generation_config(policy.model, SamplingConfig(), policy.spec.eos_id, policy.spec.pad_id)
    assert config.mtp_inference_mode == [8192, 0] and config.top_k == 3
    _, _, batch = batch_of_two(policy)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)  # adapters that change the outputs, as after training
    policy.model.eval()
    ref = policy.token_logprobs(batch, reference=True)
    assert not torch.allclose(ref, policy.token_logprobs(batch).detach(), atol=1e-4)
    base = vita_policy(quirky)
    assert torch.allclose(ref, base.token_logprobs(batch).detach(), atol=1e-6)
    assert not policy.model.training


def rig_endoftext(policy, prompt: list[int], step: int) -> int:
    """Give <|endoftext|> the main head's output row of the token that greedy decoding emits at `step` (one not
    emitted before it), scaled up a little: from then on the main head prefers <|endoftext|> wherever it preferred
    that token. Returns the rigged step's token."""
    model = policy.model.train()
    with torch.no_grad():
        ids = torch.tensor([prompt])
        for _ in range(step + 1):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
        greedy = ids[0, len(prompt) :].tolist()
        assert greedy[step] not in greedy[:step]
        head = (model.get_output_embeddings() or model.lm_head).weight  # None in 4.48.3's remote-code class
        endoftext = policy.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        head[endoftext] = head[greedy[step]] * 1.001
    return greedy[step]


def test_rollouts_stop_on_every_eos_of_the_checkpoint_as_its_own_generate_does(tmp_path):
    """VITA-Audio's released generation config (VITA-MLLM/VITA-Audio, vita_audio/models/qwen2_mtp_v4_48_3/
    generation_config.json) lists eos_token_id [151645, 151643]: <|im_end|> and <|endoftext|> (also the tokenizer's
    pad). transformers' generate with that config (what VITA-Audio's tools/inference_sts.py runs: the checkpoint's
    GenerationConfig.from_pretrained, its eos list untouched) ends a row at the first of either, keeps that token, and
    pads with pad_token_id after it. The quirky checkpoint's generation config lists both the same way. Rigged so that
    the main head emits <|endoftext|> at the third reply token: the rollout ends there, token for token what the
    model's own generate returns (main head only, greedy), and its completion mask ends at that token, counted as
    text, as <|im_end|> is."""
    ckpt = write_quirky_vita_checkpoint(tmp_path / "VITA-quirky")
    policy = vita_policy(ckpt)
    endoftext, im_end = (policy.tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>"))
    assert policy.spec.all_stop_ids == (im_end, endoftext)
    prompt = policy.prompt_ids(MESSAGES, [[7, 8, 9]])
    rig_endoftext(policy, prompt, step=2)
    sampling = SamplingConfig(do_sample=False, max_new_tokens=12)
    config = rollout_generation_config(
        policy.model, sampling, policy.spec.all_stop_ids, policy.spec.pad_id, policy.mtp_inference_mode
    )
    assert config.eos_token_id == [im_end, endoftext]

    batch = policy.rollout([prompt], 1, sampling)
    rolled = batch.completion_ids[0].tolist()
    with torch.no_grad():
        own = (
            policy.model.eval()
            .generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=12, mtp_inference_mode=[8192, 0])[
                0, len(prompt) :
            ]
            .tolist()
        )
    assert own == rolled and len(rolled) == 3 and rolled[-1] == endoftext
    assert batch.masks.completion[0].tolist() == [1.0, 1.0, 1.0] and batch.masks.text[0, -1] == 1.0

    # a batch where a second row runs on: the first row's pad after its <|endoftext|> is not completion
    two = policy.make_batch([prompt, prompt], [rolled, rolled[:2] + [im_end]])
    padded = torch.cat([two.completion_ids, torch.full((2, 2), endoftext)], dim=1)
    masks = policy.masks(padded)
    assert masks.completion.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]
    assert policy.decode(two)[0] == policy.decode(two)[1]  # the reply before either stop token, nothing after


def test_the_static_decoder_stops_on_every_eos_too(tmp_path):
    """The same stop rule in our static-cache loop: a stock Qwen2 checkpoint with VITA-Audio's two-id EOS list in its
    generation_config.json, rigged to emit <|endoftext|> at the second reply token, rolls out the same tokens under
    decoder "static" as under "generate"."""
    folder = write_stock_vita_checkpoint(tmp_path / "VITA-stock")
    tok = folder / "tokenizer"
    probe = vita_policy(folder, tokenizer=tok)
    stops = [probe.tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": stops, "pad_token_id": stops[1]}))
    prompt = probe.prompt_ids(MESSAGES, [[7, 8, 9]])
    sampling = SamplingConfig(do_sample=False, max_new_tokens=10)
    rolled = {}
    for decoder in ("generate", "static"):
        policy = vita_policy(folder, tokenizer=tok, decoder=decoder)
        rig_endoftext(policy, prompt, step=1)
        rolled[decoder] = policy.rollout([prompt], 2, sampling).completion_ids.tolist()
    assert rolled["static"] == rolled["generate"] and len(rolled["static"][0]) == 2
    assert rolled["static"][0][-1] == stops[1]
