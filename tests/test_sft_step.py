"""The pure-SFT step (WavAlignModule.sft_step, the warm starts' step) pinned by value: one teacher-forced forward on
the demonstrations, the mean over rows of each row's NLL per completion token, text AND speech tokens alike.

Why by value: a step trained on the text tokens only (masks.text in place of masks.completion) still lowers a loss,
runs and logs, and nothing else in the suite looks at which tokens it covered. The demonstrations are rebuilt here
from the examples through the policy interface (prompt_ids, reply_ids, make_batch), not read from the module.
"""

from __future__ import annotations

import pytest
import torch
from test_module_wiring import POLICIES
from wiring_toys import make_module, wiring_examples

from wavalign.data.schema import DialogueExample
from wavalign.policy.base import SequenceBatch, SpeechPolicy


def hand_demonstrations(policy: SpeechPolicy, examples: list[DialogueExample]) -> SequenceBatch:
    prompts = [policy.prompt_ids(ex.messages, ex.prompt_speech or []) for ex in examples]
    replies = [policy.reply_ids(ex.target_text, ex.target_speech or []) for ex in examples]
    return policy.make_batch(prompts, replies)


def mean_row_nll(logp: torch.Tensor, mask: torch.Tensor) -> float:
    """mean over rows of sum_t mask (-log pi) / sum_t mask, in float64, written out row by row."""
    rows = [float(-(lp * m).sum() / m.sum()) for lp, m in zip(logp.double(), mask.double())]
    return sum(rows) / len(rows)


@pytest.mark.parametrize("kind", sorted(POLICIES))
def test_sft_step_is_the_mean_row_nll_over_all_completion_tokens(kind: str):
    policy = POLICIES[kind]().double()
    module, logged = make_module(policy)
    examples = wiring_examples()
    demo = hand_demonstrations(policy, examples)
    m = demo.masks
    assert (m.text.sum(dim=1) > 0).all() and (m.speech.sum(dim=1) > 0).all()  # both kinds of token in every row
    with torch.no_grad():
        logp = policy.token_logprobs(demo)
    every_token = mean_row_nll(logp, m.completion)
    text_only = mean_row_nll(logp, m.text)
    assert abs(every_token - text_only) > 1e-3  # the case tells the two apart

    loss = module.sft_step(examples)
    assert loss.requires_grad and loss.dim() == 0
    assert float(loss) == pytest.approx(every_token, abs=1e-10, rel=0)
    assert logged["loss/sft"] == pytest.approx(every_token, abs=1e-10, rel=0)
