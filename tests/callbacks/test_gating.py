"""The gate callback turns each rule into a step plan; the module reads only the plan. Each rule's plan is written out
by hand here, so a rule whose meaning the callback gets wrong (a term trained that should not be, a scale, the
demonstrations' role) fails by name."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_policy
from wiring_toys import make_module, wiring_examples

from wavalign.callbacks.gating import GateCallback
from wavalign.gates import (
    CHORDGate,
    DynamicGate,
    FixedGate,
    GateOutput,
    GateRule,
    HPTGate,
    LUFFYGate,
    ReLIFTGate,
    RLOnly,
    SFTOnly,
    SRFTGate,
)
from wavalign.runtime.distributed import GlobalGroups
from wavalign.step.plan import StepPlan

F64 = torch.float64
# two groups of four: group 0 has one good sample (spread), group 1 all fail
REWARDS = torch.tensor([[5.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], dtype=F64)


def groups(rewards: torch.Tensor = REWARDS, first: int = 0, count: int | None = None) -> GlobalGroups:
    count = rewards.shape[0] if count is None else count
    return GlobalGroups(rewards, torch.ones_like(rewards, dtype=torch.bool), first, count)


@pytest.fixture(scope="module")
def demos():
    policy = tiny_policy(seed=1)
    module, _ = make_module(policy)
    examples = wiring_examples()
    return module.demonstrations(examples, module.prompts(examples)), policy.make_batch


def plan_of(rule: GateRule, demos) -> StepPlan:
    demonstrations, make_batch = demos
    return GateCallback(rule).plan(groups(), demonstrations, make_batch)


def fields(plan: StepPlan) -> tuple:
    return (plan.train_po, plan.train_sft, plan.full_scale, plan.demos_in_group, plan.with_entropy, plan.sft_source)


# (train_po, train_sft, full_scale, demos_in_group, with_entropy, sft_source) for each rule on REWARDS
EXPECTED = {
    "fixed 0.5": (FixedGate(0.5), (True, True, False, False, False, "batch"), (0.5, 0.5)),
    "SFT only": (SFTOnly(), (False, True, False, False, False, "batch"), (0.0, 1.0)),
    "RL only": (RLOnly(), (True, False, False, False, False, "batch"), (1.0, 0.0)),
    "CHORD": (CHORDGate(), (True, True, False, False, False, "batch"), (0.9, 1.0 - 0.9)),
    "SRFT": (SRFTGate(), (True, True, True, False, True, "batch"), (1.0, 1.0)),
    "LUFFY": (LUFFYGate(), (True, True, False, True, False, "batch"), (1.0, 0.0)),
    "ReLIFT, buffer not full": (ReLIFTGate(sft_batch_size=4), (True, True, True, False, False, "none"), (1.0, 1.0)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_rule_gives_its_plan(name, demos):
    rule, want, scales = EXPECTED[name]
    plan = plan_of(rule, demos)
    assert fields(plan) == want
    assert plan.scales() == pytest.approx(scales, abs=1e-12)


def test_the_dynamic_gate_plans_the_paper_mix(demos):
    """lambda_raw by hand: group 0 v = Var([5,1,1,1])/4 = 3/4, g = sigmoid(5 (5 - 3)); group 1 v = 0."""
    plan = plan_of(DynamicGate(alpha=0.0), demos)
    g = 1.0 / (1.0 + torch.exp(torch.tensor(-10.0, dtype=F64)))
    want = float(0.8 * g * 0.75 / 2)
    assert (plan.lam, plan.lam_raw) == (pytest.approx(want, rel=1e-12), pytest.approx(want, rel=1e-12))
    assert fields(plan) == (True, True, False, False, False, "batch") and plan.group_lam is None
    assert plan.scales() == (plan.lam, 1.0 - plan.lam)


def test_a_lambda_per_group_comes_back_as_this_process_groups(demos):
    """HPT on four global groups, this process holding groups 2 and 3: the plan keeps its slice; the callback's
    `last` keeps the whole batch's (logged and checkpointed the same on every process)."""
    rewards = torch.cat([REWARDS, REWARDS.flip(0)])  # groups: spread, fail, fail, spread
    callback = GateCallback(HPTGate(switch_gate=0, success_threshold=4.0))
    demonstrations, make_batch = demos
    plan = callback.plan(groups(rewards, first=2, count=2), demonstrations, make_batch)
    assert plan.group_lam.tolist() == [0.0, 1.0] and callback.last.group_lam.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert (plan.lam, plan.scales()) == (0.5, (1.0, 1.0)) and plan.train_po and plan.train_sft


def test_the_plan_survives_a_checkpoint(demos):
    """A ReLIFT plan that replays buffered demonstrations comes back equal from its state (weights_only safe)."""
    demonstrations, make_batch = demos
    rule = ReLIFTGate(sft_batch_size=2)
    plan = GateCallback(rule).plan(groups(), demonstrations, make_batch)  # group 1 failed: one buffered
    assert plan.sft_source == "none"
    plan = GateCallback(rule).plan(groups(), demonstrations, make_batch)  # a second: the buffer replays two
    assert plan.sft_source == "replay" and plan.replay.rows == 2
    back = StepPlan.from_state(plan.state_dict())
    assert fields(back) == fields(plan) and (back.lam, back.lam_raw) == (plan.lam, plan.lam_raw)
    assert torch.equal(back.replay.completion_ids, plan.replay.completion_ids)
    assert torch.equal(back.replay.masks.text, plan.replay.masks.text)


class FlagFreeRule(GateRule):
    """A rule written by a user with none of the optional hooks: the default plan is the plain lambda mix."""

    def update(self, rewards: torch.Tensor, reliable: torch.Tensor | None = None) -> GateOutput:
        return GateOutput(0.25, 0.5)


def test_a_plain_user_rule_gets_the_plain_mix(demos):
    plan = plan_of(FlagFreeRule(), demos)
    assert (plan.lam, plan.lam_raw, plan.scales()) == (0.25, 0.5, (0.25, 0.75))
    assert fields(plan) == (True, True, False, False, False, "batch")


def test_a_checkpoint_of_another_rule_is_refused():
    state = GateCallback(FixedGate(0.5)).state_dict()
    with pytest.raises(ValueError, match="gate rule FixedGate, this run uses DynamicGate"):
        GateCallback(DynamicGate()).load_state_dict(state)


@pytest.mark.parametrize("stage", ["predict", "validate", "test"])
def test_outside_fit_a_checkpoint_restores_nothing_into_the_gate(stage):
    """`predict` or `validate` under the RL config with the warm start's checkpoint (another rule's state) loads: only
    training plans steps, so the gate keeps its own rule and state."""
    from types import SimpleNamespace

    gate = GateCallback(DynamicGate())
    gate.setup(SimpleNamespace(), SimpleNamespace(), stage)
    gate.load_state_dict(GateCallback(FixedGate(0.0)).state_dict())
    assert gate.rule.lam_prev is None and gate.last is None
    with pytest.raises(ValueError, match="this run uses DynamicGate"):
        fitting = GateCallback(DynamicGate())
        fitting.setup(SimpleNamespace(), SimpleNamespace(), "fit")
        fitting.load_state_dict(GateCallback(FixedGate(0.0)).state_dict())
