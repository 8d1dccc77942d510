"""The gate-rule interface: how much of a step is preference optimisation (lambda) and how much SFT (1 - lambda).

A rule maps each rollout batch's rewards to a `GateOutput`; its optional hooks (per-group lambda, token weights,
demonstrations in the group, replayed demonstrations, state) are what the gate callback reads to build the step's
plan (wavalign.step.plan). A new rule is one file in this package, or anywhere importable, plus one YAML line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from torch import Tensor

if TYPE_CHECKING:
    from wavalign.policy.base import SequenceBatch


@dataclass
class GateOutput:
    lam: float  # the step's lambda, after smoothing and clamping (the mean of group_lam when that is set)
    lam_raw: float  # the batch mean of the per-group raw gate, before smoothing
    group_lam: Tensor | None = None  # (B,) a lambda per prompt group; None: every group uses `lam`


@dataclass
class TokenInputs:
    """What a rule may read to weight tokens, at each update (current policy, detached where it is a weight).

    logp (N, T) / demo_logp (B, T): current log-probs of the rollouts / demonstrations (grad flows; detach them);
    entropy / demo_entropy: their per-position entropies (None unless the rule sets needs_entropy);
    advantages (N,): the rollouts' group advantages; masks: the completion masks the losses average over."""

    logp: Tensor
    demo_logp: Tensor
    advantages: Tensor | None = None
    mask: Tensor | None = None
    demo_mask: Tensor | None = None
    entropy: Tensor | None = None
    demo_entropy: Tensor | None = None


class GateRule(ABC):
    """Maps the rewards of one batch of groups, shape (B, G), to the step's lambda; the class attributes and hooks
    below declare what else the step plan must do for the rule (docs/hybrid.md, "Writing a rule")."""

    @abstractmethod
    def update(self, rewards: Tensor, reliable: Tensor | None = None) -> GateOutput: ...

    @property
    def fixed_lambda(self) -> float | None:
        """lambda when it does not depend on rewards (lets a pure-SFT run skip sampling), else None."""
        return None

    needs_entropy: bool = False  # True: the module computes per-token entropies for token_weights
    sum_terms: bool = False  # True: L = L_PO + L_SFT at full scale, the rule's token weights doing all the mixing
    demo_in_group: bool = False  # True: each demonstration is judged and joins its GRPO group as an off-policy row
    # False: the rule keeps per-process state that can add a term on one process and not another at the same step
    # (ReLIFT's buffer). Harmless when each process holds whole weights (DDP); with sharded weights (FSDP2) every
    # forward is a collective, so wavalign.runtime.sharding refuses such a rule rather than hang.
    even_across_processes: bool = True

    def sft_demonstrations(
        self, demonstrations: SequenceBatch, make_batch: Callable[..., SequenceBatch]
    ) -> SequenceBatch | None:
        """The demonstrations this fresh batch's SFT term trains on, asked once per rollout batch after update:
        by default the batch's own; None: no SFT term; a rule that replays stored demonstrations (ReLIFT) builds
        them with make_batch(prompts, replies), the policy's own padding."""
        return demonstrations

    def demo_ratio(self, demo_logp: Tensor) -> Tensor:
        """The per-token 'ratio' of a demonstration row in the group (demo_in_group): here pi_theta itself, the
        behaviour policy's probability taken as 1; a rule shapes it (LUFFY: p / (p + gamma))."""
        return demo_logp.exp()

    def token_weights(self, inputs: TokenInputs) -> tuple[Tensor | None, Tensor | None]:
        """Optional per-token weights (policy-gradient term (N, T) or (N, 1), SFT term (B, T) or (B, 1)) from the
        current step's tensors, computed at each update; None leaves a term unweighted."""
        return None, None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Stateless rules have nothing to restore."""
