"""The module's wiring, pinned by behaviour: every number a step uses is recomputed here by hand from the judge's
own rule and the policy's log-probs, so a sign, an order, a grouping or an option that silently does nothing fails.

The pure functions (objectives, gate) have their own hand-computed tests; these check what the module feeds them.
"""

from __future__ import annotations

import pytest
import torch
from conftest import DEBUG_VOCAB, tiny_policy
from wiring_toys import (
    GROUP,
    PartlyFailingJudge,
    hand_rewards,
    keyed_score,
    make_module,
    no_grad,
    optimiser_step,
    wiring_examples,
)

from wavalign.gates import DynamicGate, FixedGate
from wavalign.policy.lora import LoraSettings
from wavalign.policy.parallel import ParallelPolicy
from wavalign.policy.tiny_parallel import TinyParallel
from wavalign.step.losses import ADV_EPS, dpo_loss, k3_kl, masked_mean_per_row, policy_loss

BATCH = {"ids": [0, 1], "examples": wiring_examples()}


def tiny_parallel_policy(seed: int = 1) -> ParallelPolicy:
    source = TinyParallel(
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
    return ParallelPolicy(source, num_speech_tokens=64, audio_delay=2)


POLICIES = {"interleaved": lambda: tiny_policy(seed=1), "parallel": tiny_parallel_policy}


def zscores(r: torch.Tensor, scale: bool = True) -> torch.Tensor:
    centred = r - r.mean(dim=1, keepdim=True)
    return centred / (r.std(dim=1, unbiased=False, keepdim=True) + ADV_EPS) if scale else centred


# ---- grouping and judging ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(POLICIES))
def test_each_rollout_row_is_sampled_from_and_judged_against_its_own_prompt(kind):
    torch.manual_seed(0)
    module, _ = make_module(POLICIES[kind]())
    examples = BATCH["examples"]
    module.training_step(BATCH, 0)
    entry = module.last_entry
    prompts = module.prompts(examples)
    assert entry.rollouts.rows == len(examples) * GROUP
    for i in range(entry.rollouts.rows):
        own = entry.rollouts.prompt_ids[i][entry.rollouts.prompt_mask[i].bool()].cpu()
        assert torch.equal(own, torch.as_tensor(prompts[i // GROUP])), (
            f"row {i} was not sampled from prompt {i // GROUP}"
        )
    requests, scores = entry.judged.requests, entry.judged.scores
    replies = module.policy.decode(entry.rollouts)
    for i, (req, reply) in enumerate(zip(requests, replies)):
        assert req.question == examples[i // GROUP].question_text and req.reply_text == reply.text
        assert scores[i].score == keyed_score(examples[i // GROUP].question_text, reply.text)


@pytest.mark.parametrize("scale", [True, False])
def test_advantages_are_each_groups_own_scores_standardised(scale):
    torch.manual_seed(0)
    module, _ = make_module(tiny_policy(seed=1), scale_rewards=scale)
    module.training_step(BATCH, 0)
    r = hand_rewards(module, BATCH["examples"])
    assert (r.std(dim=1) > 0.1).all()  # the check below has something to see
    expected = zscores(r, scale).flatten()
    assert torch.allclose(module.last_entry.advantages.rollouts.double(), expected, atol=1e-9)
    if scale:  # unit spread per group, as the z-score gives; unscaled keeps the judge's units
        assert torch.allclose(
            expected.view(-1, GROUP).std(dim=1, unbiased=False), torch.ones(2, dtype=torch.float64), atol=1e-3
        )


def test_a_pure_policy_gradient_step_raises_the_best_reply_and_lowers_the_worst():
    torch.manual_seed(0)
    module, _ = make_module(tiny_policy(seed=1), lr=0.02)
    loss = module.training_step(BATCH, 0)
    entry = module.last_entry
    r = hand_rewards(module, BATCH["examples"]).flatten()
    adv = zscores(r.view(-1, GROUP)).flatten()
    text = entry.rollouts.masks.select("text")

    def per_row():
        return no_grad(
            lambda: masked_mean_per_row(module.policy.token_logprobs(entry.rollouts).double(), text.double())
        )

    before = per_row()
    optimiser_step(module, loss)
    after = per_row()
    assert float((adv * (after - before)).sum()) > 0  # the surrogate's own direction
    best, worst = int(r.argmax()), int(r.argmin())
    assert after[best] > before[best] and after[worst] < before[worst]


# ---- the loss the module builds -----------------------------------------------------------------------------------------
def first_epoch_expectation(module, entry, **kwargs):
    """policy_loss on the rollouts' current log-probs (the first update: old = current)."""
    logp = no_grad(lambda: module.policy.token_logprobs(entry.rollouts))
    return policy_loss(logp, entry.advantages.rollouts, entry.rollouts.masks.select("text"), **kwargs).loss


def test_each_loss_type_reaches_the_loss_as_specified():
    values = {}
    for loss_type in ("grpo", "dr_grpo", "dapo", "bnpo"):
        torch.manual_seed(0)
        module, logged = make_module(tiny_policy(seed=1), loss_type=loss_type)
        module.training_step(BATCH, 0)
        expected = first_epoch_expectation(module, module.last_entry, loss_type=loss_type)
        assert logged["loss/po"] == pytest.approx(float(expected), rel=1e-5, abs=1e-7), loss_type
        values[loss_type] = float(expected)
    assert values["dapo"] == pytest.approx(values["bnpo"])  # one rule, two names
    distinct = [values["grpo"], values["dr_grpo"], values["dapo"]]
    assert len({round(v, 6) for v in distinct}) == 3, (
        "the rollouts' text lengths must differ for this test to see anything"
    )


@pytest.mark.parametrize("epsilon_high", [None, 0.5])
def test_the_second_ppo_epoch_uses_the_first_epochs_log_probs_and_clips(epsilon_high):
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), lr=1.0, ppo_epochs=2, epsilon=0.05, epsilon_high=epsilon_high)
    loss = module.training_step(BATCH, 0)
    entry = module.last_entry
    old = no_grad(lambda: module.policy.token_logprobs(entry.rollouts))
    assert torch.allclose(entry.old_logp, old, atol=1e-6)
    optimiser_step(module, loss)
    module.training_step(BATCH, 1)
    assert module.last_entry is entry and entry.uses == 2
    now = no_grad(lambda: module.policy.token_logprobs(entry.rollouts))
    mask = entry.rollouts.masks.select("text")
    kw = dict(old_logp=old, epsilon=0.05)
    expected = policy_loss(now, entry.advantages.rollouts, mask, epsilon_high=epsilon_high, **kw)
    assert logged["loss/po"] == pytest.approx(float(expected.loss), rel=1e-5, abs=1e-7)
    assert (
        logged["rollout/clip_ratio"] == pytest.approx(float(expected.clip_ratio)) and logged["rollout/clip_ratio"] > 0
    )
    # the options must matter on these numbers: a ratio of 1, or a symmetric clip, gives other values
    assert float(policy_loss(now, entry.advantages.rollouts, mask, old_logp=now).loss) != pytest.approx(
        logged["loss/po"], rel=1e-3
    )
    other = policy_loss(now, entry.advantages.rollouts, mask, epsilon_high=0.05 if epsilon_high else 0.5, **kw)
    assert float(other.loss) != pytest.approx(logged["loss/po"], rel=1e-3)


@pytest.mark.parametrize("lora", [None, LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"])])
def test_the_kl_term_is_there_and_right_once_the_policy_has_moved(lora):
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1, lora=lora), beta=0.5)
    with torch.no_grad():  # move the trained weights away from the reference (LoRA: the adapters only)
        for p in module.policy.parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn_like(p))
    module.training_step(BATCH, 0)
    entry = module.last_entry
    ref = module.policy.token_logprobs(entry.rollouts, reference=True)
    assert entry.ref_logp is not None and torch.allclose(entry.ref_logp, ref)
    logp = no_grad(lambda: module.policy.token_logprobs(entry.rollouts))
    mask = entry.rollouts.masks.select("text")
    kl = float((k3_kl(logp, ref) * mask).sum() / mask.sum())
    assert kl > 1e-3 and logged["loss/kl"] == pytest.approx(kl, rel=1e-4)
    expected = policy_loss(logp, entry.advantages.rollouts, mask, ref_logp=ref, beta=0.5)
    assert logged["loss/po"] == pytest.approx(float(expected.loss), rel=1e-5, abs=1e-7)


def test_online_dpo_prefers_the_better_reply_of_each_group():
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), objective="dpo", dpo_beta=0.5, lr=0.05)
    with torch.no_grad():  # away from the reference, so the loss value depends on which reply is chosen
        for p in module.policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    loss = module.training_step(BATCH, 0)
    entry = module.last_entry
    r = hand_rewards(module, BATCH["examples"])
    chosen = r.argmax(dim=1) + torch.arange(2) * GROUP
    rejected = r.argmin(dim=1) + torch.arange(2) * GROUP
    text = entry.rollouts.masks.select("text")
    ref = module.policy.token_logprobs(entry.rollouts, reference=True)

    def margins():
        lp = no_grad(lambda: module.policy.token_logprobs(entry.rollouts))
        seq = ((lp - ref) * text).sum(dim=1)
        return seq[chosen] - seq[rejected], (lp * text).sum(dim=1)[rejected]

    logp = no_grad(lambda: module.policy.token_logprobs(entry.rollouts))
    expected = dpo_loss(logp[chosen], logp[rejected], ref[chosen], ref[rejected], text[chosen], text[rejected], 0.5)
    assert logged["loss/po"] == pytest.approx(float(expected), rel=1e-5)
    margin0, worse0 = margins()
    optimiser_step(module, loss)
    margin1, worse1 = margins()
    assert (margin1 > margin0).all() and (worse1 < worse0).all()


# ---- unreliable scores -------------------------------------------------------------------------------------------------
def test_unreliable_scores_are_left_out_of_the_gate_and_the_advantages():
    """Group 0 loses rows 1 and 2 (fallbacks 5 and 1), group 1 keeps only row 7: the gate sees group 0's two
    reliable scores and counts group 1 as uninformative; failed rows get advantage 0."""
    torch.manual_seed(0)
    fallbacks = {1: 5.0, 2: 1.0, 4: 5.0, 5: 1.0, 6: 5.0}
    gate = DynamicGate(lambda_max=0.8, alpha=0.9, k=5.0, tau=3.0)
    module, logged = make_module(tiny_policy(seed=1), rule=gate, judge=PartlyFailingJudge(fallbacks))
    module.training_step(BATCH, 0)
    entry = module.last_entry
    r = hand_rewards(module, BATCH["examples"])
    a, b = float(r[0, 0]), float(r[0, 3])
    var = ((a - b) / 2) ** 2  # population variance of two values
    raw0 = 0.8 * torch.sigmoid(torch.tensor(5.0 * (max(a, b) - 3.0), dtype=torch.float64)).item() * min(var / 4.0, 1.0)
    expected_lam = raw0 / 2  # group 1 contributes 0; the first step has no EMA history
    assert entry.lam == pytest.approx(expected_lam, rel=1e-9) and expected_lam > 0.01
    adv = entry.advantages.rollouts.double()
    pair = torch.tensor([a, b], dtype=torch.float64)
    z = (pair - pair.mean()) / (pair.std(unbiased=False) + ADV_EPS)
    expected = torch.zeros(8, dtype=torch.float64)
    expected[0], expected[3] = z[0], z[1]
    assert torch.allclose(adv, expected, atol=1e-9)
    assert logged["judge/unreliable"] == pytest.approx(5 / 8)


def test_a_fixed_gate_lambda_mixes_the_two_losses_as_logged():
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), rule=FixedGate(0.3))
    loss = module.training_step(BATCH, 0)
    assert logged["gate/lambda"] == pytest.approx(0.3)
    assert float(loss) == pytest.approx(0.3 * logged["loss/po"] + 0.7 * logged["loss/sft"], rel=1e-6)


# ---- demonstrations from the reference schema ---------------------------------------------------------------------------
def test_the_demonstration_uses_the_rows_sft_target_codes_not_a_fresh_encoding(tmp_path):
    """A reference row with both sft_target_audio and sft_target_codes: the codes are the demonstration's speech (the
    file is not encoded again: this codec refuses to), laid out in the reply exactly as given."""
    import json

    import numpy as np
    import soundfile as sf

    from wavalign.data.schema import load_jsonl

    class RefusingCodec:
        num_codes, sample_rate = 64, 16000

        def encode(self, wav, sr):
            raise AssertionError("the row's sft_target_codes should have been used")

    sf.write(tmp_path / "q.wav", np.zeros(1600, dtype=np.float32), 16000)
    sf.write(tmp_path / "a.wav", np.zeros(3200, dtype=np.float32), 16000)
    codes = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    row = {
        "messages": [{"role": "user", "content": "<|audio|>"}],
        "audios": ["q.wav"],
        "audio_codes": [[7, 7, 8]],
        "sft_target_text": "two plus two is four",
        "sft_target_audio": "a.wav",
        "sft_target_codes": codes,
    }
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    examples = load_jsonl(tmp_path / "train.jsonl")
    module, _ = make_module(tiny_policy(seed=1), codec=RefusingCodec())
    policy = module.policy
    demo = module.demonstrations(examples, module.prompts(examples))
    reply = demo.completion_ids[0][demo.masks.completion[0].bool()].tolist()
    assert reply == policy.reply_ids("two plus two is four", codes)
    assert policy.spec.split_reply(reply, policy.speech_offset)[1] == codes
