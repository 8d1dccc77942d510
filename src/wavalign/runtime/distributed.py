"""Multi-process training: what a step computes from the whole batch is computed over every rank.

Each rank rolls out, judges and computes advantages for its own prompt groups (a group never straddles ranks: the
train sampler keeps it whole). The gate is the exception: its rule is a function of the whole batch's rewards, so
every rank gathers the reward and reliability tensors of all ranks' groups, in global group order (rank 0's groups
first, as a one-process run with the global batch would hold them), and runs the rule on them. λ, the rule's state
(EMA, step counts) and the logged reward figures are then identical on every rank: the same function of the global
batch's rewards as in a one-process run. The rewards themselves differ from that run's whenever they depend on the
replies, since each rank samples from its own stream (docs/distributed.md, "What is equal across process counts").
A rule with a λ per group gets the whole batch too; each rank keeps its own groups' slice.

What differs per rank and must be checkpointed per rank (random streams, the rollout buffer) is gathered when a
checkpoint is written (`save_per_rank`) and each rank takes its own share back on resume (`load_per_rank`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor


def process_slot(trainer: pl.Trainer | None) -> tuple[int, int]:
    """(global rank, world size); (0, 1) without a trainer."""
    return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)


@dataclass
class GlobalGroups:
    """The rewards of every rank's groups, shape (B_global, G), in global group order; this rank's groups are rows
    first .. first + count - 1."""

    rewards: Tensor  # float64, CPU
    reliable: Tensor  # bool, CPU
    first: int
    count: int

    def mine(self, per_group: Tensor) -> Tensor:
        """This rank's rows of a per-group tensor of the global batch."""
        if per_group.shape[0] != self.rewards.shape[0]:
            raise ValueError(
                f"a per-group tensor of the global batch needs {self.rewards.shape[0]} rows, got {per_group.shape[0]}"
            )
        return per_group[self.first : self.first + self.count]

    def reward_stats(self) -> dict[str, Tensor]:
        """The logged reward figures of the global batch (same on every rank)."""
        r = self.rewards
        std = r.std(dim=1, unbiased=False)
        return {
            "reward/mean": r.mean(),
            "reward/std": std.mean(),
            "rollout/frac_zero_std": (std == 0).double().mean(),
            "judge/unreliable": (~self.reliable).double().mean(),
        }


def gather_groups(module: pl.LightningModule, rewards: Tensor, reliable: Tensor) -> GlobalGroups:
    """Every rank's (B, G) rewards and reliability flags, joined in rank order (a collective: all ranks call it at
    the same step). Uses the strategy's all_gather (`LightningModule.all_gather`), so it works under DDP, FSDP and
    DeepSpeed alike; tensors travel on the module's device (NCCL needs them on the GPU)."""
    rank, world_size = process_slot(module._trainer)
    if world_size == 1:
        return GlobalGroups(rewards, reliable.bool(), 0, rewards.shape[0])
    shapes = module.all_gather(torch.tensor(list(rewards.shape), device=module.device)).view(world_size, 2).tolist()
    if any(s != shapes[0] for s in shapes):
        raise RuntimeError(
            f"ranks hold reward batches of different shapes {shapes}: every rank needs the same number "
            "of prompt groups per step (the train sampler guarantees it; a custom datamodule must too)"
        )
    packed = torch.stack([rewards.to(torch.float64), reliable.to(torch.float64)]).to(module.device)
    got = module.all_gather(packed).cpu()  # (world, 2, B, G)
    b, g = rewards.shape
    return GlobalGroups(got[:, 0].reshape(world_size * b, g), got[:, 1].reshape(world_size * b, g) > 0.5, rank * b, b)


# ---- random streams ---------------------------------------------------------------------------------------------
def rank_seed(base_seed: int, rank: int) -> int:
    """A seed for rank r's stream drawn from (base seed, rank) by numpy's SeedSequence, so streams do not overlap."""
    return int(np.random.SeedSequence([base_seed, rank]).generate_state(1)[0])


def decorrelate_rank_streams(trainer: pl.Trainer) -> None:
    """`seed_everything` gives every process the same seed, so every rank would draw the same sampling noise for its
    rollouts. Ranks above 0 are reseeded from (seed, rank); rank 0 keeps its stream, so its draws are those of a
    one-process run. Safe after the model is built: DDP broadcasts rank 0's weights and FSDP/DeepSpeed shard them."""
    import random

    rank, world_size = process_slot(trainer)
    if world_size == 1 or rank == 0:
        return
    seed = rank_seed(torch.initial_seed(), rank)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# ---- per-rank checkpoint state ------------------------------------------------------------------------------------
def to_cpu(obj: Any) -> Any:
    """A nested state with every tensor moved to the CPU (so it pickles to any rank and loads without a GPU)."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def save_per_rank(trainer: pl.Trainer | None, state: Any) -> dict[str, list[Any]]:
    """{"ranks": [state of rank 0, rank 1, ...]}: a collective (every rank writes the checkpoint together; Lightning
    lets rank 0 write the file)."""
    _, world_size = process_slot(trainer)
    state = to_cpu(state)
    if world_size == 1 or not dist.is_available() or not dist.is_initialized():
        return {"ranks": [state]}
    states: list[Any] = [None] * world_size
    dist.all_gather_object(states, state)
    return {"ranks": states}


def load_per_rank(saved: Any, rank: int, world_size: int, what: str) -> Any:
    """This rank's share of a `save_per_rank` state; a state saved before per-rank states existed (one process) is
    taken as it is by a one-process run."""
    if not (isinstance(saved, dict) and "ranks" in saved):
        if world_size > 1:
            raise ValueError(f"{what}: the checkpoint was written by a one-process run; resume it with one process")
        return saved
    states = saved["ranks"]
    if len(states) != world_size:
        raise ValueError(
            f"{what}: the checkpoint was written by {len(states)} processes, this run has {world_size}: resume "
            "with the same number of processes (devices x nodes), which the data position and random "
            "streams depend on"
        )
    return states[rank]
