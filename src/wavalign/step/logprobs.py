"""The log-prob forward of one training update: rollouts and demonstrations, each with grad only where a loss term
trains it, in one joint forward where both do, and (when asked) each position's entropy from the same forward."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from wavalign.policy.base import SequenceBatch, SpeechPolicy


@dataclass
class StepLogprobs:
    logp: Tensor  # (N, T) rollouts
    demo_logp: Tensor | None  # (B, T') demonstrations (None when the step has no SFT batch)
    entropy: Tensor | None = None  # (N, T) detached, when asked
    demo_entropy: Tensor | None = None  # (B, T') detached, when asked


def _one(policy: SpeechPolicy, batch: SequenceBatch, grad: bool, with_entropy: bool) -> tuple[Tensor, Tensor | None]:
    with torch.set_grad_enabled(grad):
        if with_entropy:
            return policy.token_logprobs_and_entropy(batch)
        return policy.token_logprobs(batch), None


def step_logprobs(
    policy: SpeechPolicy,
    rollouts: SequenceBatch,
    demo: SequenceBatch | None,
    train_po: bool,
    train_sft: bool,
    joint: bool,
    with_entropy: bool = False,
) -> StepLogprobs:
    """Log-probs of the rollouts (grad when train_po) and demonstrations (grad when train_sft); joint: both train,
    so one padded forward serves both (policies that cannot pad run them one by one). demo None: no SFT batch."""
    if demo is None:
        logp, entropy = _one(policy, rollouts, train_po, with_entropy)
        return StepLogprobs(logp, None, entropy)
    if joint and train_po and train_sft:
        out = policy.joint_logprobs([rollouts, demo], with_entropy)
        if with_entropy:
            (logp, entropy), (demo_logp, demo_entropy) = out
            return StepLogprobs(logp, demo_logp, entropy, demo_entropy)
        return StepLogprobs(out[0], out[1])
    logp, entropy = _one(policy, rollouts, train_po, with_entropy)
    demo_logp, demo_entropy = _one(policy, demo, train_sft, with_entropy)
    return StepLogprobs(logp, demo_logp, entropy, demo_entropy)
