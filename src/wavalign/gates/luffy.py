"""LUFFY, Learning to reason Under oFF-policY guidance (Yan et al., "Learning to Reason under Off-Policy Guidance",
arXiv 2504.14945; public code ElliottYan/LUFFY, luffy/verl/verl/mix_src/mix_core_alg.py
`compute_token_on_off_policy_loss` with off_policy_reshape "p_div_p_0.1", run by exp_scripts/train.sh).

Mixed-policy GRPO: each prompt's demonstration joins its group as an off-policy sample. It is judged like a
rollout, and its reward counts in the group's mean (and std) so every member's advantage is relative to it too.
Its tokens are trained with the policy-shaped ratio f(pi_theta) = pi_theta / (pi_theta + gamma), gamma = 0.1, in
place of the importance ratio (the behaviour policy's probability taken as 1, as upstream does without target
probabilities), with no clipping: loss -A f(p) per token. f's gradient p gamma / (p + gamma)^2 keeps learning from
low-probability demonstration tokens that plain importance weighting would ignore. No SFT term: lambda = 1.

Adaptations: upstream replaces one of its 8 rollouts by the demonstration (n = 8, n_prefix = 1) and drops the std
normalisation (grpo_use_std False); configs/ablations/luffy.yaml follows both (model.group_size 3 rollouts + the
demonstration, model.scale_rewards false). Without those settings the demonstration is an extra member (G + 1)
under this project's std scaling. Upstream's other switches (loss_remove_clip, loss_remove_token_mean) stay this
project's settings (model.epsilon, model.loss_type). The demonstration's tokens follow model.po_tokens as the
rollouts' do (WavAlign: text tokens).
"""

from __future__ import annotations

from torch import Tensor

from wavalign.gates.base import GateOutput, GateRule


def luffy_shaping(logp: Tensor, gamma: float = 0.1) -> Tensor:
    """f(p) = p / (p + gamma) of each token's current probability (gradient flows through it)."""
    p = logp.exp()
    return p / (p + gamma)


class LUFFYGate(GateRule):
    """Pure RL (lambda = 1) with each demonstration in its group as an off-policy row shaped by p / (p + gamma).

    Args:
        gamma: the shaping constant of f(p) = p / (p + gamma) on demonstration tokens (upstream 0.1).
    """

    demo_in_group = True

    def __init__(self, gamma: float = 0.1) -> None:
        if gamma <= 0:
            raise ValueError(f"LUFFYGate gamma must be > 0, got {gamma}")
        self.gamma = float(gamma)

    def update(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput:
        return GateOutput(1.0, 1.0)

    def demo_ratio(self, demo_logp: Tensor) -> Tensor:
        return luffy_shaping(demo_logp, self.gamma)
