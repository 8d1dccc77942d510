"""ReLIFT by hand: upstream TheRoadQaQ/ReLIFT relift/verl/verl/relift/trainer.py (`ReliftPPOTrainer.fit`): prompts
whose rollouts all fail are put in front of the SFT buffer with their demonstration; once it holds sft_data_size
of them, the first sft_data_size are trained with SFT and the rest stay; RL runs on every batch."""

from __future__ import annotations

import pytest
import torch
from conftest import DEBUG_VOCAB, tiny_policy
from wiring_toys import make_module, no_grad, wiring_examples

from wavalign.callbacks.gating import GateCallback
from wavalign.gates.relift import ReLIFTGate, unpadded_rows
from wavalign.policy.parallel import ParallelPolicy
from wavalign.policy.tiny_parallel import TinyParallel
from wavalign.step.losses import policy_loss, sft_loss
from wavalign.step.rollouts import RolloutBuffer

F64 = torch.float64
MESSAGES = [{"role": "user", "content": "<|audio|>"}]


def tiny_parallel(seed: int) -> ParallelPolicy:
    source = TinyParallel(
        vocab_file=str(DEBUG_VOCAB),
        num_speech_tokens=64,
        hidden_size=32,
        shared_layers=1,
        text_layers=1,
        audio_layers=1,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=64,
        seed=seed,
    )
    return ParallelPolicy(source, num_speech_tokens=64, audio_delay=2)


def test_a_group_fails_when_every_score_is_reliable_and_below_the_threshold():
    rewards = torch.tensor([[1.0, 2.0], [5.0, 1.0], [3.0, 3.9]], dtype=F64)
    gate = ReLIFTGate(success_threshold=4.0)
    assert gate.all_failed(rewards).tolist() == [True, False, True]
    reliable = torch.tensor([[True, True], [True, True], [True, False]])
    assert gate.all_failed(rewards, reliable).tolist() == [True, False, False]  # not known to fail: not buffered
    out = gate.update(rewards)
    assert (out.lam, out.group_lam) == (1.0, None)


def demos(policy, texts: list[str]):
    prompts = [policy.prompt_ids(MESSAGES, [[1 + i, 2, 3][: 1 + i % 3]]) for i in range(len(texts))]
    return policy.make_batch(prompts, [policy.reply_ids(t, [4, 5, 6][: 1 + i]) for i, t in enumerate(texts)])


@pytest.mark.parametrize(
    "make_policy", [lambda: tiny_policy(seed=1), lambda: tiny_parallel(seed=1)], ids=["interleaved", "parallel"]
)
def test_the_buffer_fills_newest_first_and_hands_out_sft_batch_size_rows(make_policy):
    """Batch 1 (a, b): only a fails -> buffer [a]. Batch 2 (c, d): both fail -> [c, d, a] >= 2 -> SFT on c, d; a stays.
    The handed-out batch equals the demonstrations rebuilt by the policy itself."""
    policy = make_policy()
    gate = ReLIFTGate(sft_batch_size=2)
    first, second = demos(policy, ["one", "two two"]), demos(policy, ["three", "four two one"])
    gate.update(torch.tensor([[1.0, 1.0], [5.0, 1.0]]))
    assert gate.sft_demonstrations(first, policy.make_batch) is None and len(gate.buffer) == 1
    gate.update(torch.tensor([[1.0, 2.0], [3.0, 1.0]]))
    out = gate.sft_demonstrations(second, policy.make_batch)
    assert unpadded_rows(out) == unpadded_rows(second)
    assert gate.buffer == [unpadded_rows(first)[0]]
    for name in ("completion", "text", "speech"):
        assert torch.equal(getattr(out.masks, name), getattr(second.masks, name))


def test_the_buffer_is_in_the_gate_state_and_resumes():
    policy = tiny_policy(seed=1)
    gate = ReLIFTGate(sft_batch_size=2)
    gate.update(torch.ones(2, 2))
    assert gate.sft_demonstrations(demos(policy, ["one", "two"]), policy.make_batch).rows == 2
    assert gate.buffer == []  # two failures filled it and were handed out at once
    gate.update(torch.tensor([[1.0, 1.0], [5.0, 5.0]]))
    gate.sft_demonstrations(demos(policy, ["three", "four"]), policy.make_batch)
    resumed = ReLIFTGate(sft_batch_size=2)
    GateCallback(resumed).load_state_dict(GateCallback(gate).state_dict())
    assert resumed.buffer == gate.buffer and len(resumed.buffer) == 1
    with pytest.raises(ValueError, match="sft_batch_size"):
        ReLIFTGate(sft_batch_size=0)


def test_the_module_adds_sft_on_the_buffered_demonstrations_when_it_fills():
    """Threshold 6 (above every score): both prompts fail, the buffer [row 0, row 1] reaches 1 and hands out row 0.
    L = L_PO(text, this batch) + L_SFT(row 0's demonstration)."""
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), rule=ReLIFTGate(sft_batch_size=1, success_threshold=6.0))
    loss = module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
    entry, policy = module.last_entry, module.policy
    assert unpadded_rows(entry.sft_batch) == unpadded_rows(entry.demonstrations)[:1]
    assert module.gate.rule.buffer == unpadded_rows(entry.demonstrations)[1:]
    logp = no_grad(lambda: policy.token_logprobs(entry.rollouts)).double()
    po = policy_loss(logp, entry.advantages.rollouts.double(), entry.rollouts.masks.select("text").double()).loss
    demo = entry.sft_batch
    sft = sft_loss(no_grad(lambda: policy.token_logprobs(demo)).double(), demo.masks.completion.double())
    assert float(loss.detach()) == pytest.approx(float(po + sft), rel=1e-5, abs=1e-7)
    assert logged["loss/sft"] == pytest.approx(float(sft), rel=1e-5)
    saved = RolloutBuffer(2)  # a run stopped between two PPO epochs resumes with the same SFT batch
    saved.entry = entry
    restored = RolloutBuffer(2)
    restored.load_state_dict(saved.state_dict())
    assert unpadded_rows(restored.entry.sft_batch) == unpadded_rows(demo) and restored.entry.plan.sft_source == "replay"


def test_a_step_with_nothing_to_replay_is_pure_rl():
    torch.manual_seed(0)
    module, logged = make_module(tiny_policy(seed=1), rule=ReLIFTGate(sft_batch_size=1, success_threshold=0.5))
    loss = module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
    entry = module.last_entry
    assert entry.plan.sft_source == "none" and module.gate.rule.buffer == [] and logged["loss/sft"] == 0.0
    logp = no_grad(lambda: module.policy.token_logprobs(entry.rollouts)).double()
    po = policy_loss(logp, entry.advantages.rollouts.double(), entry.rollouts.masks.select("text").double()).loss
    assert float(loss.detach()) == pytest.approx(float(po), rel=1e-5, abs=1e-7)
