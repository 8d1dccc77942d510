"""Parts for the multi-process tests: a judge whose scores depend only on the prompt (so a 2-process run and a
1-process run over the same prompts get the same rewards whatever their rollouts), and a callback that writes what
each rank trained on and the gate it saw, one JSON line per step, to `<out_dir>/rank<r>.jsonl`."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Sequence

import lightning.pytorch as pl
import torch

from wavalign.judges.base import Judge, JudgeRequest, JudgeScore


class PromptKeyedJudge(Judge):
    """Score of the j-th reply of a group: 1 + crc32(question, j) mod 5; every 7th key is unreliable, so the
    reliability flags have to travel with the rewards. The reply itself is not looked at."""

    def __init__(self, group_size: int) -> None:
        self.group_size = group_size

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        out = []
        for i, req in enumerate(requests):
            key = zlib.crc32(f"{req.question}|{i % self.group_size}".encode())
            out.append(JudgeScore(float(1 + key % 5), reliable=key % 7 != 0))
        return out


def policy_facts(policy) -> dict:
    """What the policy runs with: LoRA, sharded (DTensor) weights, gradient checkpointing, the reference's kind."""
    from torch.distributed.tensor import DTensor

    return {
        "lora": policy.uses_lora,
        "sharded": any(isinstance(p, DTensor) for p in policy.model.parameters()),
        "checkpointing": any(getattr(m, "gradient_checkpointing", False) is True for m in policy.model.modules()),
        "reference": "adapters off"
        if policy.uses_lora
        else ("frozen copy" if policy._frozen_reference is not None else None),
    }


class RankRecorder(pl.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        entry = pl_module.last_entry
        row = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "ids": list(batch["ids"]),
            "lam": entry.lam,
            "gate_state": pl_module.gate.rule.state_dict(),
            "loss": float(outputs["loss"]),
            "world_size": trainer.world_size,
            "rng": zlib.crc32(torch.get_rng_state().numpy().tobytes()),
            "strategy": type(trainer.strategy).__name__,
            **policy_facts(pl_module.policy),
            "group_lam": None if entry.plan.group_lam is None else entry.plan.group_lam.tolist(),
            "gate_group_lam": None if pl_module.gate.last.group_lam is None else pl_module.gate.last.group_lam.tolist(),
        }
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / f"rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
