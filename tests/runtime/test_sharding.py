"""FSDP2 sharding of the policy (wavalign.runtime.sharding) in 2 real gloo processes on CPU, without Lightning: the sharded
model decodes and scores exactly what the unsharded one does (parameters are gathered by FSDP2's forward hooks, unit
by unit), the LoRA reference (adapters disabled) included, and a rank whose rows all end early keeps decoding in
lockstep instead of leaving the other rank's all-gather waiting (wavalign.policy.decoding.still_running)."""

from __future__ import annotations

import copy
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import DEBUG_VOCAB, tiny_policy
from torch import nn

from wavalign.policy.base import SamplingConfig
from wavalign.policy.decoding import StaticCacheSampler
from wavalign.policy.lora import LoraSettings
from wavalign.policy.parallel import ParallelPolicy
from wavalign.policy.tiny_parallel import TinyParallel
from wavalign.runtime.sharding import fully_shard_model, transformer_blocks

MESSAGES = [{"role": "user", "content": "<|audio|>"}]
GREEDY = SamplingConfig(max_new_tokens=6, do_sample=False)


def test_blocks_are_the_models_no_split_classes_or_named_layers():
    policy = tiny_policy()
    assert [type(b).__name__ for b in transformer_blocks(policy.model)] == ["Qwen2DecoderLayer"] * 2

    class Block(nn.Module):
        pass

    assert len(transformer_blocks(nn.Sequential(Block(), nn.Linear(2, 2), Block()))) == 2
    with pytest.raises(ValueError, match="no transformer blocks"):
        fully_shard_model(nn.Linear(2, 2), mesh=None)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    torch.manual_seed(rank)  # the ranks' LoRA inits differ: sharding must start every rank from rank 0's weights
    policy = tiny_policy(lora=LoraSettings(r=4, alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # a trained adapter, so that "adapters disabled" differs from the policy
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    box = [policy.model.state_dict()]
    dist.broadcast_object_list(box, src=0)  # the whole-model results to compare with are rank 0's model's
    own_differs = any(not torch.equal(v, box[0][k]) for k, v in policy.model.state_dict().items())
    twin = copy.deepcopy(policy)
    twin.model.load_state_dict(box[0])
    prompt = torch.tensor([policy.prompt_ids(MESSAGES, [[rank + 1, 2, 3]])])
    mask = torch.ones_like(prompt)
    reply = torch.tensor(policy.reply_ids("two plus two is four", [1, 2, 3]))
    batch = policy.make_batch([prompt[0].tolist()], [reply.tolist()])
    whole = {
        "greedy": StaticCacheSampler(twin.model, compile=False).sample(
            prompt, mask, GREEDY, eos_id=-1, pad_id=policy.spec.pad_id
        ),
        "policy": twin.token_logprobs(batch).detach(),
        "reference": twin.token_logprobs(batch, reference=True),
    }
    sampler = StaticCacheSampler(policy.model, compile=False)
    blocks = fully_shard_model(policy.model, init_device_mesh("cpu", (2,)))
    params = list(policy.model.parameters())
    sharded = {
        "greedy": sampler.sample(prompt, mask, GREEDY, eos_id=-1, pad_id=policy.spec.pad_id, lockstep=True),
        "policy": policy.token_logprobs(batch).detach(),
        "reference": policy.token_logprobs(batch, reference=True),
    }
    # rank 0's only row ends at its first token (its EOS is that token); rank 1's never ends
    eos = int(whole["greedy"][0, 0]) if rank == 0 else -1
    early = sampler.sample(prompt, mask, GREEDY, eos_id=eos, pad_id=policy.spec.pad_id, lockstep=True)
    par = whole_and_sharded_parallel(rank)
    torch.save(
        {
            "parallel": par,
            "own_differs": own_differs,
            "blocks": blocks,
            "all_dtensor": all(isinstance(p, DTensor) for p in params),
            "whole": whole,
            "sharded": sharded,
            "early": early,
            "eos": eos,
            "pad": policy.spec.pad_id,
        },
        Path(out) / f"rank{rank}.pt",
    )
    dist.destroy_process_group()


def whole_and_sharded_parallel(rank: int) -> dict:
    """A parallel-head policy, full fine-tuning with its frozen reference copy: greedy rollouts of both streams and
    log-probs before and after sharding (the reference copy is sharded too)."""
    from torch.distributed.device_mesh import init_device_mesh

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
    )
    policy = ParallelPolicy(source, num_speech_tokens=64, audio_delay=2)
    policy.setup_reference()
    prompts = [policy.prompt_ids(MESSAGES, [[rank + 1, 2, 3]])]

    def run() -> dict:
        rollouts = policy.rollout(prompts, 2, GREEDY)
        return {
            "completion": rollouts.completion_ids,
            "policy": policy.token_logprobs(rollouts).detach(),
            "reference": policy.token_logprobs(rollouts, reference=True),
        }

    whole = run()
    fully_shard_model(policy.model, init_device_mesh("cpu", (2,)), [policy._frozen_reference])
    policy.lockstep_decoding = True
    return {"whole": whole, "sharded": run()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_sharded_policy_decodes_and_scores_as_the_whole_one_in_lockstep(tmp_path):
    ctx = mp.start_processes(_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 180
    try:
        while not ctx.join(timeout=5):
            if time.monotonic() > deadline:
                pytest.fail("the 2 ranks did not finish in 180 s (one waiting in a collective for the other?)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert got["blocks"] == 2 and got["all_dtensor"]
        assert got["own_differs"] == (rank == 1)  # rank 1 built other LoRA weights; sharding started it from rank 0's
        assert torch.equal(got["sharded"]["greedy"], got["whole"]["greedy"])
        for key in ("policy", "reference"):
            torch.testing.assert_close(got["sharded"][key], got["whole"][key], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(got["whole"]["policy"], got["whole"]["reference"])  # the adapter matters
        par = got["parallel"]
        assert torch.equal(par["sharded"]["completion"], par["whole"]["completion"])
        for key in ("policy", "reference"):
            torch.testing.assert_close(par["sharded"][key], par["whole"][key], rtol=1e-5, atol=1e-5)
        early = got["early"]
        assert early.shape == got["whole"]["greedy"].shape  # both ranks decoded all 6 steps
        if rank == 0:
            assert early[0, 0] == got["eos"] and bool((early[0, 1:] == got["pad"]).all())
        else:
            assert torch.equal(early, got["whole"]["greedy"])


def test_a_gate_rule_with_per_process_sft_steps_is_refused_before_sharding():
    """ReLIFT's buffer fills at different steps on different processes; with sharded weights that would hang, so the
    gate callback refuses it at setup (before configure_model shards anything) with a message naming the rule and
    the way out."""
    from types import SimpleNamespace

    from lightning.pytorch.strategies import ModelParallelStrategy

    from wavalign.callbacks.gating import GateCallback
    from wavalign.gates import DynamicGate
    from wavalign.gates.relift import ReLIFTGate

    def setup(rule, world_size):
        module = SimpleNamespace(gate=None)
        GateCallback(rule).setup(
            SimpleNamespace(strategy=ModelParallelStrategy(), world_size=world_size), module, "fit"
        )
        return module

    with pytest.raises(ValueError, match=r"ReLIFTGate .*hang sharded weights.*configs/strategies/ddp.yaml"):
        setup(ReLIFTGate(sft_batch_size=4), world_size=2)
    for rule, world_size in ((DynamicGate(), 2), (ReLIFTGate(sft_batch_size=4), 1)):  # not refused
        assert setup(rule, world_size).gate.rule is rule


def test_deepspeed_zero3_refuses_the_same_gate_rule():
    """ZeRO-3 gathers parameters in every forward like FSDP2, so the same rule would hang there: refused too (a
    stand-in strategy holding only the config, since DeepSpeed itself is not installed here); decoding goes in
    lockstep under ZeRO-3 only."""
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DeepSpeedStrategy

    from wavalign.callbacks.gating import GateCallback
    from wavalign.gates.relift import ReLIFTGate
    from wavalign.runtime.sharding import shard_policy

    class Zero3(DeepSpeedStrategy):
        def __init__(self, stage: int) -> None:  # no DeepSpeed import: only what the checks read
            self.config = {"zero_optimization": {"stage": stage}}

    def trainer(stage):
        return SimpleNamespace(strategy=Zero3(stage), world_size=2)

    with pytest.raises(ValueError, match=r"ReLIFTGate .*DeepSpeed ZeRO-3.*configs/strategies/ddp.yaml"):
        GateCallback(ReLIFTGate(sft_batch_size=4)).setup(trainer(3), SimpleNamespace(), "fit")
    GateCallback(ReLIFTGate(sft_batch_size=4)).setup(trainer(2), SimpleNamespace(), "fit")  # whole weights: allowed
    for stage, lockstep in ((2, False), (3, True)):
        module = SimpleNamespace(_trainer=trainer(stage), policy=SimpleNamespace(lockstep_decoding=False))
        shard_policy(module)
        assert module.policy.lockstep_decoding is lockstep
