"""Multi-process training (wavalign.runtime.distributed, the sharding train sampler, per-rank resume state).

The `distributed` test runs real `fit` subprocesses: 2 CPU processes under Lightning's DDP (gloo) with the
configs/strategies/ddp.yaml overlay, a 1-process run with the 2-process run's global batch, and a 2-process resume
from the first run's mid-run checkpoint. Rewards come from a judge keyed on the prompt alone
(tests/distributed_toys.py), so the two runs' λ can be compared exactly although their rollouts differ.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, scalars

from wavalign.data.datamodule import RepeatBatchSampler
from wavalign.runtime.distributed import GlobalGroups, load_per_rank, rank_seed, save_per_rank

STEPS, PER_RANK, GROUP = 8, 4, 4


# ---- the sampler -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_split_each_global_batch_of_the_one_process_order(world):
    """Rank r's k-th batch is the r-th slice of the one-process run's k-th batch (batch_size x world); together the
    ranks never see a prompt twice in an epoch; the repeat and resume position work per rank as in one process."""
    n, bs = 23, 2
    one = list(RepeatBatchSampler(n, bs * world, repeat=2, seed=5))
    ranks = [RepeatBatchSampler(n, bs, repeat=2, seed=5, rank=r, world_size=world) for r in range(world)]
    got = [list(s) for s in ranks]
    assert all(len(g) == len(one) == len(s) for g, s in zip(got, ranks))
    for k, batch in enumerate(one):
        assert sum((g[k] for g in got), []) == batch
    seen = [i for g in got for i in sum(g[::2], [])]  # every second batch: the repeats are PPO epochs
    assert len(seen) == len(set(seen)) == (n // (bs * world)) * bs * world
    resumed = RepeatBatchSampler(n, bs, repeat=2, seed=5, rank=1, world_size=world)
    resumed.skip(3)
    assert list(resumed) == got[1][3:]


def test_sampler_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError, match="rank"):
        RepeatBatchSampler(8, 2, rank=2, world_size=2)


# ---- gathering and per-rank state in one process -------------------------------------------------------------------
def test_one_process_gather_is_the_batch_itself():
    rewards = torch.tensor([[1.0, 5.0], [3.0, 3.0]], dtype=torch.float64)
    world = GlobalGroups(rewards, torch.tensor([[True, True], [True, False]]), 0, 2)
    stats = world.reward_stats()
    assert float(stats["reward/mean"]) == 3.0
    assert float(stats["rollout/frac_zero_std"]) == 0.5  # the second group's rewards are all equal
    assert float(stats["judge/unreliable"]) == 0.25
    two = GlobalGroups(torch.zeros(4, 2), torch.ones(4, 2, dtype=torch.bool), 2, 2)
    assert two.mine(torch.arange(4)).tolist() == [2, 3]
    with pytest.raises(ValueError, match="4 rows"):
        two.mine(torch.arange(2))


def test_per_rank_states_round_trip_and_a_changed_process_count_is_refused():
    saved = {"ranks": [{"a": 0}, {"a": 1}]}
    assert load_per_rank(saved, 1, 2, "random states") == {"a": 1}
    with pytest.raises(ValueError, match="random states: the checkpoint was written by 2 processes, this run has 3"):
        load_per_rank(saved, 0, 3, "random states")
    assert load_per_rank({"entry": None}, 0, 1, "rollout buffer") == {"entry": None}  # a checkpoint from before
    with pytest.raises(ValueError, match="one-process run"):
        load_per_rank({"entry": None}, 0, 2, "rollout buffer")
    assert save_per_rank(None, {"t": torch.ones(2)})["ranks"][0]["t"].tolist() == [1.0, 1.0]
    assert len({rank_seed(0, r) for r in range(4)}) == 4


# ---- real processes ----------------------------------------------------------------------------------------------
LORA = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
LORA_CKPT = {"lora": LORA, "gradient_checkpointing": True}
STRATEGIES = {  # the overlay's arguments for 2 processes
    "ddp": ["--config", "configs/strategies/ddp.yaml"],
    "fsdp": ["--config", "configs/strategies/fsdp.yaml"],  # data_parallel_size follows --trainer.devices
}
# docs/distributed.md's table, as each run checks it: (policy settings, what the ranks must report)
MAIN_RUNS = {
    "ddp": ({}, {"lora": False, "sharded": False, "checkpointing": False, "reference": "frozen copy"}),
    "fsdp": (LORA_CKPT, {"lora": True, "sharded": True, "checkpointing": True, "reference": "adapters off"}),
}


def fit(
    tmp: Path,
    name: str,
    processes: int,
    batch_size: int,
    strategy: str | None = None,
    extra: list[str] = [],
    config: str = "configs/debug_interleaved.yaml",
    steps: int = STEPS,
    policy: dict = {},
) -> Path:
    """A `fit` of `config` (PPO epochs 2, a checkpoint every 5 steps, all kept) with the prompt-keyed judge; returns
    the folder of the per-rank records."""
    records = tmp / name / "records"
    overlay = tmp / f"{name}.yaml"
    callbacks = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(tmp / name / "ckpt"), "every_n_train_steps": 5, "save_top_k": -1},
        },
        {"class_path": "distributed_toys.RankRecorder", "init_args": {"out_dir": str(records)}},
    ]
    model = {"judge": {"class_path": "distributed_toys.PromptKeyedJudge", "init_args": {"group_size": GROUP}}}
    args = STRATEGIES[strategy] if strategy else []
    if policy:
        model["policy"] = {"init_args": policy}
    overlay.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}, "model": model}))
    cmd = [
        sys.executable,
        "-m",
        "wavalign",
        "fit",
        "--config",
        config,
        *args,
        "--config",
        str(overlay),
        f"--trainer.devices={processes}",
        "--trainer.accelerator=cpu",
        f"--trainer.max_steps={steps}",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
        "--model.ppo_epochs=2",
        f"--model.group_size={GROUP}",
        f"--data.init_args.batch_size={batch_size}",
        "--model.sampling.max_new_tokens=12",
        "--trainer.logger.init_args.save_dir",
        str(tmp / name / "runs"),
        *extra,
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    )
    launch(cmd, env, name, timeout=240)
    return records


def launch(cmd: list[str], env: dict[str, str], name: str, timeout: int) -> None:
    """Runs a `wavalign` launcher (it starts the ranks) and fails the test on an error or after `timeout` seconds."""
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # a rank stuck in a collective: end the launcher and the ranks it started
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"{name}: no result in {timeout} s (a rank waiting for another?)\n{err[-4000:]}")
    assert proc.returncode == 0, err[-4000:]


def rows(records: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (records / f"rank{rank}.jsonl").read_text().splitlines()]


def saved_rng_ranks(ckpt: Path) -> int:
    """How many ranks' random states a checkpoint holds (a file, or a sharded checkpoint's folder with meta.pt)."""
    state = torch.load(ckpt / "meta.pt" if ckpt.is_dir() else ckpt, map_location="cpu", weights_only=True)
    return len(state["callbacks"]["ResumeStateCallback"]["rng"]["ranks"])


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> list[dict]:
    """One process over the 2-process runs' global batch (2 x PER_RANK prompts a step)."""
    return rows(fit(tmp_path_factory.mktemp("one"), "one", 1, 2 * PER_RANK), 0)


@pytest.mark.distributed
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_two_processes_train_as_one_global_batch_and_resume_exactly(tmp_path, strategy, one_process):
    policy, facts = MAIN_RUNS[strategy]
    ranks = fit(tmp_path, "two", 2, PER_RANK, strategy, policy=policy)
    r0, r1 = rows(ranks, 0), rows(ranks, 1)
    assert {k: r0[0][k] for k in facts} == {k: r1[0][k] for k in facts} == facts
    assert [r["step"] for r in r0] == [r["step"] for r in r1] == list(range(1, STEPS + 1))
    assert {r["world_size"] for r in r0 + r1} == {2}
    # the gate saw the global batch: the same λ and rule state on both ranks
    assert [r["lam"] for r in r0] == [r["lam"] for r in r1]
    assert [r["gate_state"] for r in r0] == [r["gate_state"] for r in r1]
    assert len({r["lam"] for r in r0}) > 2  # the keyed rewards move the gate: the comparison is not of constants
    assert r0[0]["rng"] != r1[0]["rng"]  # each rank samples with its own random stream
    # no prompt twice within an epoch across ranks (a batch repeats for its 2nd PPO epoch: count fresh batches)
    for epoch in {r["epoch"] for r in r0}:
        fresh = [i for rank in (r0, r1) for r in rank[::2] if r["epoch"] == epoch for i in r["ids"]]
        assert len(fresh) == len(set(fresh)), epoch
    # one process with the global batch: the same prompts per step in the same group order, and the same λ
    assert [r["ids"] for r in one_process] == [a["ids"] + b["ids"] for a, b in zip(r0, r1)]
    assert [r["lam"] for r in one_process] == [r["lam"] for r in r0]
    assert [r["gate_state"] for r in one_process] == [r["gate_state"] for r in r0]
    # resume both ranks from the step-5 checkpoint (between the two PPO epochs of a rollout batch: the buffers)
    ckpt = tmp_path / "two" / "ckpt" / "epoch=0-step=5.ckpt"
    assert saved_rng_ranks(ckpt) == 2  # every rank's random states are in the checkpoint
    resumed = fit(tmp_path, "resume", 2, PER_RANK, strategy, ["--ckpt_path", str(ckpt)], policy=policy)
    for rank, whole in ((0, r0), (1, r1)):
        assert rows(resumed, rank) == [r for r in whole if r["step"] > 5], rank


@pytest.mark.distributed
def test_parallel_heads_with_lora_and_checkpointing_train_under_ddp_with_a_per_group_rule(tmp_path):
    """Kimi-Audio's layout (two heads, branch layers) under DDP: every parameter takes part in the loss, so DDP's
    default find_unused_parameters=False holds; LoRA reference = adapters off. (Under FSDP: tests/runtime/test_sharding.py.)
    The gate is HPT's, a λ per group: every rank gets the whole batch's λ vector and keeps its own groups' slice."""
    hpt = ["--gate.rule=wavalign.gates.HPTGate", "--gate.rule.init_args.switch_gate=1"]
    ranks = fit(tmp_path, "parallel", 2, 2, "ddp", hpt, config="configs/debug_parallel.yaml", steps=2, policy=LORA_CKPT)
    r0, r1 = rows(ranks, 0), rows(ranks, 1)
    facts = {"lora": True, "sharded": False, "checkpointing": True, "reference": "adapters off"}
    assert {k: r0[0][k] for k in facts} == {k: r1[0][k] for k in facts} == facts
    assert [r["step"] for r in r0] == [1, 2] and [r["lam"] for r in r0] == [r["lam"] for r in r1]
    assert r0[0]["ids"] != r1[0]["ids"] and all(math.isfinite(r["loss"]) for r in r0 + r1)
    whole = r0[0]["gate_group_lam"]
    assert whole == r1[0]["gate_group_lam"] and len(whole) == 4 and 0 < sum(whole) < 4  # both kinds of group
    assert r0[0]["group_lam"] == whole[:2] and r1[0]["group_lam"] == whole[2:]


def validate_benchmark(tmp: Path, name: str, processes: int, strategy: str | None) -> dict[str, float]:
    """`validate` with a BenchmarkCallback over 5 items in batches of 2, greedy: under 2 processes rank 0 scores 3
    items in 2 rounds and rank 1 scores 2 in 1. Returns the logged eval/* values."""
    bench = {
        "class_path": "wavalign.callbacks.benchmark.BenchmarkCallback",
        "init_args": {
            "suites": [
                {
                    "class_path": "wavalign.benchmarks.generic.GenericSuite",
                    "init_args": {"name": "debug", "path": "configs/data/debug_bench.jsonl", "max_items": 5},
                }
            ],
            "wer": "reference",
            "batch_size": 2,
            "iq_samples": 1,
        },
    }
    overlay = tmp / f"{name}.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {"trainer": {"callbacks": [bench]}, "model": {"eval_sampling": {"do_sample": False, "max_new_tokens": 8}}}
        )
    )
    cmd = [
        sys.executable,
        "-m",
        "wavalign",
        "validate",
        "--config",
        "configs/debug_interleaved.yaml",
        *(STRATEGIES[strategy] if strategy else []),
        "--config",
        str(overlay),
        f"--trainer.devices={processes}",
        "--trainer.accelerator=cpu",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
        "--summary.enabled=false",
        "--trainer.logger.init_args.save_dir",
        str(tmp / name),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launch(cmd, env, name, timeout=180)
    return {k: v[-1][1] for k, v in scalars(tmp / name).items() if k.startswith("eval/")}


@pytest.mark.distributed
def test_a_benchmark_with_uneven_shares_finishes_under_sharded_weights_and_counts_every_item(tmp_path):
    """Under FSDP2 a rollout is a collective: the process with fewer items runs a dropped round instead of leaving
    the other waiting, and the pooled figures equal one process's over the same 5 items (greedy replies)."""
    two = validate_benchmark(tmp_path, "fsdp", 2, "fsdp")
    one = validate_benchmark(tmp_path, "one", 1, None)
    assert {"eval/iq", "eval/eq", "eval/wer"} <= set(two)
    assert two == pytest.approx(one, rel=1e-6)
