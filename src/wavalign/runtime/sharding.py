"""Sharded training: FSDP2 (`torch.distributed.fsdp.fully_shard`) under Lightning's ModelParallelStrategy.

`LightningModule.configure_model` calls `shard_policy`: every transformer block becomes its own FSDP2 unit, then the
policy's model (embeddings, norms, heads: the root unit) and, for full fine-tuning with a KL or DPO term, the frozen
reference copy. Parameters are gathered the way FSDP2 does it, by forward hooks: each unit all-gathers its parameters
just before its forward and frees them after, so every call that goes through a module's forward works unchanged:
the teacher-forced log-probs, transformers' `generate` and our decoding loops (one gather per unit per decoding step;
the root unit keeps its parameters between steps of a rollout since its reshard is off), and the LoRA reference, which
is the same sharded model run with peft's adapters disabled. Gradient checkpointing (non-reentrant) is set on the
blocks before sharding and recomputes inside the unit's forward.

Only data parallelism: the strategy's data-parallel size must be the process count (tensor_parallel_size: 1), which
DataParallelFSDP (configs/strategies/fsdp.yaml) works out from the devices; the train sampler shards prompts by
global rank.
"""

from __future__ import annotations

from typing import Iterable

import lightning.pytorch as pl
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn

BLOCK_SUFFIXES = ("DecoderLayer", "Block")


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks to shard one by one: transformers' `_no_split_modules` classes where the model names them,
    else modules whose class name ends in DecoderLayer or Block."""
    names: set[str] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    match = (lambda m: type(m).__name__ in names) if names else (lambda m: type(m).__name__.endswith(BLOCK_SUFFIXES))
    return [m for m in model.modules() if match(m)]


def broadcast_from_rank0(model: nn.Module, device_type: str) -> None:
    """Every rank starts from rank 0's weights. FSDP2 shards whatever each rank holds (DDP, unlike it, broadcasts at
    wrap time): ranks built with different random states (a LoRA init from an unseeded stream) would otherwise train
    a model stitched from different initialisations. Each tensor travels through the mesh's device type (NCCL: GPU)."""
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return
    device = torch.device("cuda", torch.cuda.current_device()) if device_type == "cuda" else torch.device(device_type)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.device.type == "meta":
                continue
            moved = t.detach().to(device)
            dist.broadcast(moved, src=0)
            if moved is not t:
                t.copy_(moved)


def fully_shard_model(model: nn.Module, mesh: object, extra_roots: Iterable[nn.Module] = ()) -> int:
    """FSDP2 units: each block, then `model` itself, the transformers model under a peft wrapper (reshard_after_forward
    off: a rollout calls its forward once per decoding step). Returns the number of blocks sharded. A model with no recognisable block is refused: sharding it
    as one unit would gather the whole model at every forward, i.e. no memory saved."""
    from torch.distributed.fsdp import fully_shard

    get_base = getattr(model, "get_base_model", None)
    model = get_base() if callable(get_base) else model  # under peft: generate calls the base model's forward
    blocks = transformer_blocks(model)
    if not blocks:
        raise ValueError(
            f"{type(model).__name__}: no transformer blocks found to shard (no _no_split_modules, no "
            f"class named *{BLOCK_SUFFIXES[0]} or *{BLOCK_SUFFIXES[1]})"
        )
    broadcast_from_rank0(model, mesh.device_type)
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh, reshard_after_forward=False)
    for root in extra_roots:
        broadcast_from_rank0(root, mesh.device_type)
        for block in transformer_blocks(root):
            fully_shard(block, mesh=mesh)
        fully_shard(root, mesh=mesh, reshard_after_forward=False)
    return len(blocks)


def is_zero3(strategy: object) -> bool:
    """DeepSpeed ZeRO stage 3: parameters are gathered in every module's forward."""
    from lightning.pytorch.strategies import DeepSpeedStrategy

    return isinstance(strategy, DeepSpeedStrategy) and strategy.config.get("zero_optimization", {}).get("stage") == 3


def every_forward_is_collective(trainer: object | None) -> bool:
    """True when several processes hold sharded weights (FSDP2 or DeepSpeed ZeRO-3), so every forward is a
    collective: a process that runs a forward its peers skip leaves them waiting for ever."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    strategy = getattr(trainer, "strategy", None)
    sharded = is_zero3(strategy) or isinstance(strategy, ModelParallelStrategy)
    return sharded and getattr(trainer, "world_size", 1) > 1


def shard_policy(module: pl.LightningModule) -> None:
    """The configure_model hook: FSDP2-shard the policy under ModelParallelStrategy, leave it as it is otherwise
    (DDP replicates it; DeepSpeed shards it itself, and under ZeRO-3 decoding goes in lockstep too). Idempotent:
    Lightning may call configure_model again."""
    from lightning.pytorch.strategies import ModelParallelStrategy

    trainer = module._trainer
    strategy = None if trainer is None else trainer.strategy
    if is_zero3(strategy):
        module.policy.lockstep_decoding = True  # ZeRO-3 gathers parameters in every module's forward, like FSDP
    if not isinstance(strategy, ModelParallelStrategy):
        return
    mesh = module.device_mesh
    if mesh["tensor_parallel"].size() != 1:
        raise ValueError(
            "ModelParallelStrategy: WavAlign shards data only; set tensor_parallel_size: 1 and "
            "data_parallel_size to the process count (configs/strategies/fsdp.yaml)"
        )
    policy = module.policy
    if getattr(policy, "_sharded", False):
        return
    reference = getattr(policy, "_frozen_reference", None)
    fully_shard_model(policy.model, mesh["data_parallel"], [reference] if reference is not None else [])
    object.__setattr__(policy, "_sharded", True)
    policy.lockstep_decoding = True  # a rank done decoding early would leave the others' all-gathers waiting


class DataParallelFSDP(ModelParallelStrategy):
    """Lightning's ModelParallelStrategy (FSDP2) for data parallelism only, sized at start-up: data_parallel_size =
    devices x num_nodes and tensor_parallel_size = 1, so `--trainer.devices=N` is all a run sets. (The parent's
    "auto" means data_parallel_size = num_nodes and tensor_parallel_size = devices; the fixed number the overlay held
    broke every other device count.)

    Args:
        save_distributed_checkpoint: Save one shard file per process (True) or one full checkpoint file.
        process_group_backend: The torch.distributed backend; None picks NCCL on GPUs and gloo on CPU.
    """

    def __init__(self, save_distributed_checkpoint: bool = True, process_group_backend: str | None = None) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
        )

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes  # the parent's "auto" would be num_nodes
        super().setup_environment()
