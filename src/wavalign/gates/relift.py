"""ReLIFT, Reinforcement Learning Interleaved with Online Fine-Tuning (Ma et al., "Learning What Reinforcement
Learning Can't: Interleaved Online Fine-Tuning for Hardest Questions", arXiv 2506.07527; public code
TheRoadQaQ/ReLIFT, relift/verl/verl/relift/trainer.py `ReliftPPOTrainer.fit`, config sft.sft_data_size).

RL on every batch. A prompt whose rollouts all fail is put in a buffer with its demonstration; when the buffer
holds `sft_batch_size` of them, those are taken out and trained with SFT. Upstream buffers new prompts in front and
takes the first sft_data_size (128 in its math scripts), so the newest go first; the same order here.

Adaptations: upstream runs the SFT update as separate optimiser steps after that iteration's RL update; here the
step that fills the buffer adds the SFT term on the buffered demonstrations to its RL loss (L = L_PO + L_SFT, one
optimiser step); every other step is pure RL. A prompt fails when all its G scores are reliable and below
`success_threshold` (upstream: all rewards equal the verifier's fail value); a group with an unreliable score is
not buffered (it is not known to fail). The buffer holds token ids (prompts and demonstrations, unpadded) and is in
every checkpoint; prompts with continuous features (Kimi-Audio's Whisper input) cannot be buffered.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from wavalign.gates.base import GateOutput, GateRule
from wavalign.policy.base import SequenceBatch


def unpadded_rows(batch: SequenceBatch) -> list[list[Any]]:
    """Each row's [prompt ids, reply ids] without padding, as plain lists (a checkpoint-safe form)."""
    steps = batch.completion_ids.shape[1]
    rows = []
    for i in range(batch.rows):
        prompt = batch.prompt_ids[i][batch.prompt_mask[i].bool()]
        length = int(batch.masks.completion[i, :steps].sum())
        rows.append([prompt.tolist(), batch.completion_ids[i, :length].tolist()])
    return rows


class ReLIFTGate(GateRule):
    """lambda = 1 (RL); prompts with all-failed groups are buffered with their demonstrations, and the step that
    fills the buffer to sft_batch_size adds SFT on them.

    Args:
        sft_batch_size: buffered failed prompts that trigger one SFT term on them (upstream 128).
        success_threshold: the judge score (1-5) below which every reliable rollout of a group counts as failed.
    """

    sum_terms = True
    even_across_processes = False  # each process buffers its own failed prompts and fills it at its own step

    def __init__(self, sft_batch_size: int = 128, success_threshold: float = 4.0) -> None:
        if sft_batch_size < 1:
            raise ValueError(f"ReLIFTGate sft_batch_size must be >= 1, got {sft_batch_size}")
        self.sft_batch_size, self.success_threshold = int(sft_batch_size), float(success_threshold)
        self.buffer: list[list[Any]] = []  # [prompt ids, reply ids] per buffered prompt, newest first
        self.failed: Tensor | None = None  # (B,) of the last update

    def all_failed(self, rewards: Tensor, reliable: Tensor | None = None) -> Tensor:
        """(B,) True where every score of the group is reliable and below success_threshold."""
        ok = torch.ones_like(rewards, dtype=torch.bool) if reliable is None else reliable.bool()
        return (ok & (rewards < self.success_threshold)).all(dim=1)

    def update(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput:
        self.failed = self.all_failed(rewards, reliable).cpu()
        return GateOutput(1.0, 1.0)

    def sft_demonstrations(
        self, demonstrations: SequenceBatch, make_batch: Callable[..., SequenceBatch]
    ) -> SequenceBatch | None:
        if self.failed is None or self.failed.numel() != demonstrations.rows:
            raise RuntimeError("ReLIFTGate: sft_demonstrations asked before update on the same batch")
        if bool(self.failed.any()):
            if demonstrations.features is not None:
                raise ValueError(
                    "ReLIFTGate buffers token ids: prompts with continuous features (whisper_features) "
                    "cannot be buffered; use another rule or a policy without them"
                )
            rows = unpadded_rows(demonstrations)
            self.buffer = [rows[b] for b in range(len(rows)) if bool(self.failed[b])] + self.buffer
        self.failed = None
        if len(self.buffer) < self.sft_batch_size:
            return None
        take, self.buffer = self.buffer[: self.sft_batch_size], self.buffer[self.sft_batch_size :]
        return make_batch([p for p, _ in take], [r for _, r in take])

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": [[list(p), list(r)] for p, r in self.buffer]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer = [list(row) for row in state.get("buffer", [])]
