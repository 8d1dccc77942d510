"""A small hand-written case of rollouts and demonstrations whose losses are worked out by hand (shared by the plan's
and the hybrid rules' tests)."""

from __future__ import annotations

import math

import torch

F64 = torch.float64


def rollouts_case() -> dict[str, torch.Tensor]:
    """Two groups of two rows, two positions; pi_old differs from pi_theta on two tokens so ratios are not 1."""
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.5], [-1.5, -1.0], [-2.0, -0.1]], dtype=F64)
    shift = torch.tensor([[0.1, 0.0], [0.0, 0.0], [-0.3, 0.0], [0.0, 0.0]], dtype=F64)
    return {
        "logp": logp,
        "old": logp - shift,  # ratio = exp(shift)
        "adv": torch.tensor([1.0, -1.0, 0.5, -0.5], dtype=F64),
        "mask": torch.tensor([[1, 1], [1, 0], [1, 1], [0, 1]], dtype=F64),
        "demo_logp": torch.tensor([[-0.2, -0.4, -3.0], [-1.0, -0.6, -0.9]], dtype=F64),
        "demo_mask": torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=F64),
    }


def hand_rows() -> list[float]:
    """Per-row masked means of -min(rho A, clip(rho, 0.8, 1.2) A) for rollouts_case, written out."""
    r0 = -(math.exp(0.1) * 1.0 + 1.0) / 2  # rho = 1.105 inside the clip; second token rho = 1
    r1 = -(1.0 * -1.0)  # one token, rho = 1, A = -1
    r2 = -(math.exp(-0.3) * 0.5 + 0.5) / 2  # rho = 0.741: min(0.370, 0.8 * 0.5 = 0.4) = 0.370
    r3 = -(1.0 * -0.5)  # only the second token
    return [r0, r1, r2, r3]
