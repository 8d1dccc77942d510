"""po_tokens 'split' by hand in float64: text tokens carry the semantic part's group advantage, speech tokens the
acoustic part's; a judge without parts is a config error naming the field."""

from __future__ import annotations

from typing import Sequence

import pytest
import torch
from conftest import tiny_policy
from wiring_toys import GROUP, KeyedJudge, keyed_score, make_module, no_grad, wiring_examples

from wavalign.gates import FixedGate
from wavalign.judges.base import Judge, JudgeRequest, JudgeScore
from wavalign.judges.combined import WeightedJudge
from wavalign.policy.masks import ModalityMasks
from wavalign.step.losses import ADV_EPS, group_advantages, policy_loss
from wavalign.step.scoring import ScoredGroups
from wavalign.step.split_po import split_advantages, split_token_advantages

F64 = torch.float64


def scored(parts: list[dict[str, float]], reliable: list[bool] | None = None, group: int = 2) -> ScoredGroups:
    scores = [JudgeScore(3.0, True if reliable is None else reliable[i], p) for i, p in enumerate(parts)]
    flags = torch.tensor([s.reliable for s in scores]).view(-1, group)
    return ScoredGroups(torch.full((len(parts) // group, group), 3.0, dtype=F64), flags, scores, [])


def test_each_part_gets_its_own_group_advantage():
    """Group [sem 5, 3 | ac 2, 4]: each part has mean 4 and population std 1, so A = +-1 / (1 + eps), opposite signs."""
    out = split_advantages(scored([{"semantic": 5.0, "acoustic": 2.0}, {"semantic": 3.0, "acoustic": 4.0}]), 2)
    a = 1.0 / (1.0 + ADV_EPS)
    assert torch.allclose(out, torch.tensor([[a, -a], [-a, a]], dtype=F64), atol=1e-15, rtol=0)


def test_a_score_without_the_part_is_unreliable_for_it():
    """Three rollouts, the second lacks 'acoustic': its acoustic advantage is 0 and the others' use only them."""
    parts = [{"semantic": 5.0, "acoustic": 1.0}, {"semantic": 1.0}, {"semantic": 3.0, "acoustic": 3.0}]
    out = split_advantages(scored(parts, group=3), 3)
    assert out[1, 1] == 0.0
    assert out[0, 1] == pytest.approx(-1.0 / (1.0 + ADV_EPS)) and out[2, 1] == pytest.approx(1.0 / (1.0 + ADV_EPS))
    assert torch.equal(out[:, 0], group_advantages(torch.tensor([[5.0, 1.0, 3.0]], dtype=F64)).flatten())


def test_a_judge_without_parts_is_a_config_error():
    with pytest.raises(ValueError, match=r"po_tokens 'split' needs a judge .*semantic.*acoustic.*gave no parts"):
        split_advantages(scored([{}, {}]), 2)
    with pytest.raises(ValueError, match=r"gave parts \['wer'\]"):
        split_advantages(scored([{"wer": 1.0}, {"wer": 2.0}]), 2)
    assert float(split_advantages(scored([{}, {}], reliable=[False, False]), 2).abs().sum()) == 0.0  # an outage


def test_token_advantages_and_the_loss_by_hand():
    """Row 0: text, speech, text; row 1: speech, filler (neither), pad. rho = 1 on the first update, so the per-token
    loss is -A_t and the GRPO loss is the mean over rows of the per-row mean over text + speech tokens."""
    text = torch.tensor([[1, 0, 1], [0, 0, 0]], dtype=F64)
    speech = torch.tensor([[0, 1, 0], [1, 0, 0]], dtype=F64)
    m = ModalityMasks(torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=F64), text, speech)
    parts = torch.tensor([[0.5, -2.0], [1.5, 3.0]], dtype=F64)
    adv, mask = split_token_advantages(parts, m)
    assert torch.equal(adv, torch.tensor([[0.5, -2.0, 0.5], [3.0, 0.0, 0.0]], dtype=F64))
    assert torch.equal(mask, torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=F64))
    loss = policy_loss(torch.full((2, 3), -1.0, dtype=F64), adv, mask).loss
    assert float(loss) == pytest.approx((-(0.5 - 2.0 + 0.5) / 3 + -3.0) / 2, rel=1e-15)


class SaltedJudge(Judge):
    """A second prompt-and-reply-dependent judge, different from KeyedJudge, to play the acoustic part."""

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        return [JudgeScore(keyed_score(r.question + "#acoustic", r.reply_text)) for r in requests]


def test_the_module_trains_text_on_the_semantic_and_speech_on_the_acoustic_advantage():
    torch.manual_seed(0)
    judge = WeightedJudge([KeyedJudge(), SaltedJudge()], [0.7, 0.3], ["semantic", "acoustic"])
    module, logged = make_module(tiny_policy(seed=1), rule=FixedGate(1.0), judge=judge, po_tokens="split")
    examples = wiring_examples()
    loss = module.training_step({"ids": [0, 1], "examples": examples}, 0)
    entry = module.last_entry
    replies = module.policy.decode(entry.rollouts)
    sem = torch.tensor(
        [keyed_score(examples[i // GROUP].question_text, r.text) for i, r in enumerate(replies)], dtype=F64
    )
    ac = torch.tensor(
        [keyed_score(examples[i // GROUP].question_text + "#acoustic", r.text) for i, r in enumerate(replies)],
        dtype=F64,
    )
    a_sem, a_ac = group_advantages(sem.view(-1, GROUP)).flatten(), group_advantages(ac.view(-1, GROUP)).flatten()
    m = entry.rollouts.masks
    text, speech = m.text.double(), m.speech.double()
    assert text.sum() > 0 and speech.sum() > 0
    logp = no_grad(lambda: module.policy.token_logprobs(entry.rollouts)).double()
    want = policy_loss(logp, text * a_sem[:, None] + speech * a_ac[:, None], text + speech).loss
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5, abs=1e-7)
    swapped = policy_loss(logp, text * a_ac[:, None] + speech * a_sem[:, None], text + speech).loss
    assert abs(float(swapped) - float(want)) > 1e-3  # the test tells the two parts apart


def test_split_with_dpo_or_a_partless_judge_is_refused():
    with pytest.raises(ValueError, match="po_tokens 'split'.*objective 'grpo'"):
        make_module(tiny_policy(seed=1), objective="dpo", po_tokens="split")
    torch.manual_seed(0)
    module, _ = make_module(tiny_policy(seed=1), rule=FixedGate(1.0), po_tokens="split")
    with pytest.raises(ValueError, match="po_tokens 'split' needs a judge"):
        module.training_step({"ids": [0, 1], "examples": wiring_examples()}, 0)
