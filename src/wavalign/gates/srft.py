"""SRFT, Supervised Reinforcement Fine-Tuning (Fu et al., "SRFT: A Single-Stage Method with Supervised and
Reinforcement Fine-Tuning for Reasoning", arXiv 2506.19767, section 4; no public training code was found).

The paper adds its terms instead of mixing them, L = L_SFT^demo + L_RL^demo + L_RL^self, with two entropy-aware
weights, both stop-gradient:
- the demonstrations' SFT term is weighted by w_SFT = 0.5 sg(exp(-H)): the more uncertain the policy, the less it is
  pulled towards the demonstration;
- in the self-rollout term the positive samples are weighted by w_RL = 0.1 sg(exp(H)) (the negative ones keep
  weight 1): when the policy is uncertain, reinforcing its good samples more pulls the entropy back down.

Here H is the detached per-sequence entropy (the mean over a sequence's completion tokens of H_t = -sum_v p log p,
read from the training forward): each demonstration's own H for its SFT weight, each rollout's own H for its
weight. The paper writes H(pi_theta) without naming the set it averages over; per sequence is this project's reading.
A rollout is positive when its group advantage is > 0 (with 0/1 rewards: a correct sample in a mixed group; a group
with no spread has advantage 0, so its weight changes nothing). The paper states the self-rollout term for +-1
rewards as w_RL E[-log pi(y+)] + E[log pi(y-)]; here it is this project's GRPO loss with the weight on the positive
rows, which is that decomposition with group advantages.

Left out: L_RL^demo, the demonstrations as off-policy members of the GRPO group (LUFFY's idea, hybrid/luffy.py);
the paper gives no weight for it. gate/lambda logs a nominal 0.5 (both terms train at full scale).
"""

from __future__ import annotations

import torch
from torch import Tensor

from wavalign.gates.base import GateOutput, GateRule, TokenInputs
from wavalign.step.losses import masked_mean_per_row


def sequence_entropy(entropy: Tensor, mask: Tensor) -> Tensor:
    """The mean token entropy of each row over its mask, shape (rows,), detached (a row with no token: 0)."""
    return masked_mean_per_row(entropy.detach(), mask)


class SRFTGate(GateRule):
    """L = L_PO(w_po) + L_SFT(w_sft) with w_sft = sft_coef exp(-H_demo) per demonstration and w_po = rl_coef
    exp(H_rollout) on rollouts with a positive advantage (1 on the others); paper values 0.5 and 0.1.

    Args:
        sft_coef: the demonstrations' SFT weight factor, w_SFT = sft_coef exp(-H) (paper 0.5).
        rl_coef: the positive rollouts' weight factor, w_RL = rl_coef exp(H) (paper 0.1).
    """

    needs_entropy = True
    sum_terms = True

    def __init__(self, sft_coef: float = 0.5, rl_coef: float = 0.1) -> None:
        if sft_coef < 0 or rl_coef < 0:
            raise ValueError(f"SRFTGate sft_coef and rl_coef must be >= 0, got {sft_coef}, {rl_coef}")
        self.sft_coef, self.rl_coef = float(sft_coef), float(rl_coef)

    def update(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput:
        return GateOutput(0.5, 0.5)

    def token_weights(self, inputs: TokenInputs) -> tuple[Tensor | None, Tensor | None]:
        if inputs.entropy is None or inputs.demo_entropy is None or inputs.advantages is None:
            raise ValueError(
                "SRFTGate needs the step's entropies and advantages (the module passes them when needs_entropy)"
            )
        dtype = inputs.logp.dtype
        h_rollout = sequence_entropy(inputs.entropy, inputs.mask).to(dtype)
        h_demo = sequence_entropy(inputs.demo_entropy, inputs.demo_mask).to(dtype)
        positive = inputs.advantages.to(h_rollout.device) > 0
        po = torch.where(positive, self.rl_coef * torch.exp(h_rollout), torch.ones_like(h_rollout))
        return po.unsqueeze(1), (self.sft_coef * torch.exp(-h_demo)).unsqueeze(1)
