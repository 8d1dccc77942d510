"""The parallel-stream (Kimi-Audio style) policy on a tiny random model with the same token scheme and head split."""

import glob
import json

import pytest
import torch
import yaml
from conftest import DEBUG_VOCAB, scalars
from kimi_tiny import kimi_name  # our parameter name -> Kimi-Audio's, written out independently of the loader
from safetensors.torch import save_file
from wiring_toys import KeyedJudge

from wavalign.callbacks.gating import GateCallback
from wavalign.cli import main
from wavalign.data.schema import DialogueExample
from wavalign.gates import FixedGate
from wavalign.module import WavAlignModule
from wavalign.policy.base import SamplingConfig, SequenceBatch
from wavalign.policy.kimi_checkpoint import KimiAudioCheckpoint, kimi_weight_name
from wavalign.policy.lora import LoraSettings
from wavalign.policy.parallel import ParallelPolicy
from wavalign.policy.tiny_parallel import TinyParallel
from wavalign.step.losses import group_advantages, policy_loss

DELAY = 2
USER_AUDIO = [{"role": "user", "content": "<|audio|>"}]


def tiny_parallel(
    lora: LoraSettings | None = None, seed: int = 0, source=None, restrict_heads: bool = True
) -> ParallelPolicy:
    source = source or TinyParallel(
        vocab_file=str(DEBUG_VOCAB),
        num_speech_tokens=64,
        hidden_size=32,
        shared_layers=2,
        text_layers=1,
        audio_layers=1,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=64,
        seed=seed,
    )
    return ParallelPolicy(source, num_speech_tokens=64, audio_delay=DELAY, lora=lora, restrict_heads=restrict_heads)


@pytest.fixture(scope="module")
def policy() -> ParallelPolicy:
    return tiny_parallel()


def ids_of(policy: ParallelPolicy, *tokens: str) -> list[int]:
    return policy.tokenizer.convert_tokens_to_ids(list(tokens))


def test_prompt_layout_puts_markup_and_speech_on_the_audio_stream(policy):
    messages = [{"role": "system", "content": "one plus one"}, {"role": "user", "content": "<|audio|>"}]
    prompt = policy.prompt_ids(messages, [[0, 5]])
    blank, one, plus = ids_of(policy, "<|text_blank|>", "one", "plus")
    sys_, user, asst, begin, end, ctd, msg_end = ids_of(
        policy,
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|begin_audio|>",
        "<|end_audio|>",
        "<|speech_ctd|>",
        "<|msg_end|>",
    )
    s0 = policy.layout.speech_offset
    assert prompt[:, 0].tolist() == [blank, one, plus, one] + [blank] * 9
    assert prompt[:, 1].tolist() == [
        sys_,
        blank,
        blank,
        blank,
        msg_end,
        user,
        begin,
        s0,
        s0 + 5,
        end,
        ctd,
        msg_end,
        asst,
    ]


def test_masks_on_a_hand_made_batch(policy):
    lay = policy.layout
    F, E, A = lay.filler_id, lay.text_eos_id, lay.end_audio_ids[0]
    w = ids_of(policy, "two")[0]
    s = lambda k: lay.speech_offset + k  # noqa: E731
    replies = [
        # a blank sampled before the text EOS is a speech-side token; forced blanks after EOS too
        [[w, F], [F, F], [w, s(1)], [E, s(2)], [F, s(3)], [F, A]],
        # ends at step 3 (both streams done); make_batch pads steps 4-5
        [[w, F], [E, F], [F, s(4)], [F, A]],
        # cut at max_new_tokens: no end-of-audio, runs to the last step
        [[w, F], [w, F], [w, s(1)], [w, s(2)], [w, s(3)], [w, s(4)]],
        # the audio stream ends first and then carries blanks until the text EOS
        [[w, F], [w, F], [w, s(1)], [w, A], [w, F], [E, F]],
    ]
    batch = policy.make_batch([policy.prompt_ids(USER_AUDIO, [[1]])] * 4, [torch.tensor(r) for r in replies])
    m = batch.masks
    assert batch.completion_ids.shape == (4, 6, 2) and m.completion.shape == (4, 12)
    assert batch.completion_ids[1, 4:].eq(lay.pad_id).all()
    completion = [[1] * 6, [1] * 4 + [0] * 2, [1] * 6, [1] * 6]
    text = [[1, 0, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1] * 6, [1] * 6]
    text_side_speech = [[0, 1, 0, 0, 1, 1], [0, 0, 1, 1, 0, 0], [0] * 6, [0] * 6]
    expect = lambda rows: torch.tensor(rows, dtype=torch.float32)  # noqa: E731
    assert torch.equal(m.completion, expect([c + c for c in completion]))
    assert torch.equal(m.text, expect([t + [0] * 6 for t in text]))
    assert torch.equal(m.speech, expect([f + c for f, c in zip(text_side_speech, completion)]))
    assert torch.equal(m.text + m.speech, m.completion)
    replies = policy.decode(batch)
    assert [r.speech_codes for r in replies] == [[1, 2, 3], [4], [1, 2, 3, 4], [1]]
    assert replies[0].text == "two two" and replies[2].text == "two two two two two two"


def test_demonstration_layout_round_trips(policy):
    reply = policy.reply_ids("two plus two is four", list(range(10)))
    lay = policy.layout
    assert reply.shape == (DELAY + 10 + 1, 2)
    assert reply[:DELAY, 1].eq(lay.audio_filler_id).all() and reply[-1, 1] == lay.end_audio_ids[0]
    assert reply[5, 0] == lay.text_eos_id and reply[6:, 0].eq(lay.filler_id).all()
    m = lay.masks(reply.unsqueeze(0))
    assert m.text.sum() == 5 + 1 and m.speech.sum() == (len(reply) - 6) + len(reply)
    (decoded,) = policy.decode(policy.make_batch([policy.prompt_ids(USER_AUDIO, [[1]])], [reply]))
    assert decoded.text == "two plus two is four" and decoded.speech_codes == list(range(10))


def test_rollout_groups_shapes_and_forced_tokens(policy):
    prompts = [policy.prompt_ids(USER_AUDIO, [[1, 2, 3]]), policy.prompt_ids(USER_AUDIO, [[4]])]
    torch.manual_seed(0)
    batch = policy.rollout(prompts, group_size=3, sampling=SamplingConfig(max_new_tokens=12))
    n, t = 6, batch.completion_ids.shape[1]
    assert batch.prompt_ids.shape[::2] == (n, 2) and batch.completion_ids.shape == (n, t, 2) and t <= 12
    assert (
        torch.equal(batch.prompt_ids[0], batch.prompt_ids[2])
        and batch.prompt_mask[3].sum() < batch.prompt_mask[0].sum()
    )
    assert batch.masks.completion.shape == (n, 2 * t)
    assert torch.equal(batch.masks.text + batch.masks.speech, batch.masks.completion)
    assert batch.completion_ids[:, :DELAY, 1].eq(policy.layout.audio_filler_id).all()  # the audio delay
    logp = policy.token_logprobs(batch)
    assert logp.shape == (n, 2 * t) and (logp <= 0).all() and torch.isfinite(logp).all()
    assert len(policy.decode(batch)) == n


@pytest.mark.parametrize(
    "sampling, restrict",
    [
        (SamplingConfig(max_new_tokens=40), True),
        (SamplingConfig(temperature=1.0, top_p=1.0, top_k=20, max_new_tokens=40), False),
    ],
)
def test_kv_cache_generation_matches_a_full_recomputation(sampling, restrict):
    policy = tiny_parallel(restrict_heads=restrict)
    prompts = [policy.prompt_ids(USER_AUDIO, [[1, 2, 3, 4, 5]]), policy.prompt_ids(USER_AUDIO, [[6]])]
    ids, mask = policy._left_pad(prompts)
    ids, mask = ids.repeat_interleave(4, dim=0), mask.repeat_interleave(4, dim=0)
    torch.manual_seed(1)
    completion, cached = policy.generate(ids, mask, sampling)
    masks = policy.layout.masks(completion)
    assert (masks.completion.sum(dim=1) < 2 * completion.shape[1]).any()  # some rows end early: padding is exercised
    with torch.no_grad():
        full = policy.token_logprobs(SequenceBatch(ids, mask, completion, masks))
    assert torch.allclose(cached, full, atol=1e-5, rtol=0)


def text_only_and_full_token_grads(policy: ParallelPolicy, batch: SequenceBatch) -> dict[str, dict[str, float]]:
    captured = {}

    def keep(module, inputs, output) -> None:
        output.retain_grad()
        captured["logits"] = output

    hook = policy.core.audio_head.register_forward_hook(keep)
    adv = group_advantages(torch.tensor([[1.0, 3.0, 2.0, 5.0]])).flatten()
    out = {}
    try:
        for name, mask in (("text", batch.masks.select("text")), ("all", batch.masks.completion)):
            policy.zero_grad(set_to_none=True)
            logp = policy.token_logprobs(batch)
            ref = logp.detach() - 0.1
            policy_loss(logp, adv, mask, ref_logp=ref, beta=0.05).loss.backward()
            core = policy.core
            out[name] = {
                "audio_logits": captured["logits"].grad.abs().max().item(),
                "audio_head": core.audio_head.weight.grad.abs().max().item(),
                "audio_branch": max(p.grad.abs().max().item() for p in core.audio_branch.parameters()),
                "text_head": core.text_head.weight.grad.abs().max().item(),
            }
    finally:
        hook.remove()
    return out


def test_text_only_loss_has_exactly_zero_gradient_through_the_audio_head(policy):
    torch.manual_seed(2)
    batch = policy.rollout([policy.prompt_ids(USER_AUDIO, [[1, 2]])], 4, SamplingConfig(max_new_tokens=16))
    assert (batch.masks.text.sum(dim=1) > 0).all()  # no row falls back to its completion mask
    grads = text_only_and_full_token_grads(policy, batch)
    assert (
        grads["text"]["audio_logits"] == 0.0
        and grads["text"]["audio_head"] == 0.0
        and grads["text"]["audio_branch"] == 0.0
    )
    assert grads["text"]["text_head"] > 0
    assert grads["all"]["audio_logits"] > 0 and grads["all"]["audio_head"] > 0 and grads["all"]["audio_branch"] > 0


def test_lora_reference_equals_base_model_logprobs():
    base = tiny_parallel(seed=3)
    lora = tiny_parallel(seed=3, lora=LoraSettings(r=4, alpha=8))
    batch = base.make_batch([base.prompt_ids(USER_AUDIO, [[1, 2]])], [base.reply_ids("five is five", [3, 4, 5])])
    with torch.no_grad():  # non-trivial adapters, as after training
        for name, p in lora.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    base_logp = base.token_logprobs(batch)
    assert not torch.allclose(lora.token_logprobs(batch), base_logp, atol=1e-4)
    assert torch.allclose(lora.token_logprobs(batch, reference=True), base_logp, atol=1e-6)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("audio_branch" in n for n in trainable) and any("text_branch" in n for n in trainable)


@pytest.mark.parametrize("lora", [None, LoraSettings(r=4, alpha=8)])
def test_gradient_checkpointing_gives_the_same_gradients(lora):
    def grads(checkpointing: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)  # the same LoRA init in both
        source = TinyParallel(
            vocab_file=str(DEBUG_VOCAB), num_speech_tokens=64, hidden_size=32, num_heads=2, num_kv_heads=1
        )
        policy = ParallelPolicy(
            source, num_speech_tokens=64, audio_delay=DELAY, lora=lora, gradient_checkpointing=checkpointing
        )
        policy.train()
        batch = policy.make_batch([policy.prompt_ids(USER_AUDIO, [[1, 2]])], [policy.reply_ids("two is two", [3, 4])])
        policy.token_logprobs(batch).sum().backward()
        return [p.grad for p in policy.parameters() if p.requires_grad]

    plain, checkpointed = grads(False), grads(True)
    assert all(g is not None for g in checkpointed)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed))


def test_full_finetune_reference_is_a_frozen_copy():
    policy = tiny_parallel()
    policy.setup_reference()
    batch = policy.make_batch([policy.prompt_ids(USER_AUDIO, [[1]])], [policy.reply_ids("six", [2])])
    before = policy.token_logprobs(batch, reference=True)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(0.01)
    assert torch.equal(policy.token_logprobs(batch, reference=True), before)
    assert not any("_frozen_reference" in k or k.endswith(("text_bias", "audio_bias")) for k in policy.state_dict())


# ---- through the module and the CLI ---------------------------------------------------------------------------------
def examples() -> list[DialogueExample]:
    return [
        DialogueExample(
            messages=USER_AUDIO,
            prompt_speech=[[1, 2, 3, 4]],
            target_text=f"{a} plus {b} is {c}",
            target_speech=[5, 6, 7, 8, 9],
            question_text=f"what is {a} plus {b}",
            reference_answer=c,
        )
        for a, b, c in (("one", "two", "three"), ("two", "two", "four"))
    ]


@pytest.mark.parametrize(
    "lam, objective, po_tokens",
    [(0.5, "grpo", "text"), (1.0, "grpo", "text"), (1.0, "grpo", "all"), (1.0, "dpo", "text")],
)
def test_module_step_load_rollout_loss_update(lam, objective, po_tokens):
    torch.manual_seed(0)
    policy = tiny_parallel(seed=1)
    module = WavAlignModule(
        policy,
        KeyedJudge(),
        group_size=4,
        sampling=SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=16),
        objective=objective,
        po_tokens=po_tokens,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05),
    )
    GateCallback(FixedGate(lam)).setup(None, module, "fit")
    module.setup("fit")
    loss = module.training_step({"ids": [0, 1], "examples": examples()}, 0)
    assert torch.isfinite(loss)
    assert module.last_entry.rollouts.completion_ids.shape[::2] == (8, 2)
    opt = module.configure_optimizers()
    opt.zero_grad()
    loss.backward()
    audio_grad = policy.core.audio_head.weight.grad
    if lam == 1.0 and po_tokens == "text":  # text-only preference loss alone: the audio head is untouched
        assert audio_grad is None or audio_grad.abs().max() == 0
    else:
        assert audio_grad.abs().max() > 0
    before = policy.core.text_head.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, policy.core.text_head.weight)


@pytest.fixture
def at_root(root, monkeypatch):
    monkeypatch.chdir(root)


def test_cli_fit_on_the_debug_parallel_config(tmp_path, at_root):
    main(
        [
            "fit",
            "--config",
            "configs/debug_parallel.yaml",
            "--trainer.max_steps=2",
            "--trainer.val_check_interval=2",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.logger.init_args.name",
            "p",
            "--trainer.logger.init_args.version",
            "0",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    tags = set(scalars(tmp_path / "p"))
    assert {"loss/po", "loss/sft", "gate/lambda", "rollout/len_text", "rollout/len_speech", "val/reward"} <= tags
    assert len(glob.glob(str(tmp_path / "p" / "**" / "*.ckpt"), recursive=True)) == 1


def test_kimi_audio_config_resolves(capsys, at_root):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", "configs/kimi_audio.yaml", "--print_config"])
    assert e.value.code == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    policy = model["policy"]
    assert policy["class_path"] == "wavalign.policy.parallel.ParallelPolicy"
    assert policy["init_args"]["source"]["class_path"] == "wavalign.policy.kimi_checkpoint.KimiAudioCheckpoint"
    # Kimi-Audio's own inference behaviour is on: Whisper input, turn merging, audio-end stop, infer.py's sampling
    assert policy["init_args"]["source"]["init_args"]["whisper_features"] is True
    assert policy["init_args"]["chat"]["merge_turns"] is True and policy["init_args"]["stop_on"] == "audio"
    assert model["sampling"]["audio"] == {"temperature": 0.8, "top_k": 10, "top_p": 1.0}
    assert model["eval_sampling"]["audio"] == {"temperature": 0.8, "top_k": 10, "top_p": 1.0}
    assert model["eval_sampling"]["text"] == {"temperature": 0.0, "top_k": 5, "top_p": 1.0}


# ---- Kimi-Audio checkpoints: the weight map, on a tiny checkpoint written under Kimi-Audio's tensor names ---------
def test_kimi_checkpoint_loads_through_the_weight_map(tmp_path):
    source = TinyParallel(
        vocab_file=str(DEBUG_VOCAB),
        num_speech_tokens=64,
        hidden_size=32,
        shared_layers=2,
        text_layers=2,
        audio_layers=1,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=64,
        seed=5,
    )
    model, tokenizer = source.build()
    split = model.config.num_hidden_layers
    state = {kimi_name(k, split): v.contiguous() for k, v in model.state_dict().items()}
    assert all(kimi_weight_name(k, split) is not None for k in state)
    state["model.vq_adaptor.layers.0.weight"] = torch.zeros(2, 2)  # Whisper adaptor: present in Kimi-Audio, unused
    save_file(state, str(tmp_path / "model.safetensors"))
    raw = {k: v for k, v in model.config.to_dict().items() if k not in ("layer_types",)}
    raw.update(
        model_type="moonshot_kimia",
        num_hidden_layers=split + 2,
        kimia_mimo_layers=1,
        kimia_mimo_transformer_from_layer_index=split - 1,
        kimia_token_offset=tokenizer.convert_tokens_to_ids("<|s_0|>"),
    )
    (tmp_path / "config.json").write_text(json.dumps(raw))
    tokenizer.save_pretrained(str(tmp_path))

    source = KimiAudioCheckpoint(str(tmp_path), dtype="float32", whisper_features=False)  # the discrete-only input
    loaded = ParallelPolicy(source, num_speech_tokens=64, audio_delay=DELAY)
    original = ParallelPolicy(source, num_speech_tokens=64, audio_delay=DELAY)
    batch = original.make_batch([original.prompt_ids(USER_AUDIO, [[1, 2]])], [original.reply_ids("two is two", [7, 8])])
    assert torch.equal(loaded.token_logprobs(batch), original.token_logprobs(batch))
    with pytest.raises(KeyError, match="unknown Kimi-Audio checkpoint tensor"):
        kimi_weight_name("model.something_new.weight", split)


def test_kimi_checkpoint_path_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="download the checkpoint"):
        KimiAudioCheckpoint(str(tmp_path / "missing")).build()
