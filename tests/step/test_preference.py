"""The preference term's settings: each bad value is refused naming the YAML key, and what needs the frozen
reference. (Its numbers are pinned through the module in tests/test_module_wiring.py and the mutations.)"""

from __future__ import annotations

import pytest

from wavalign.step.preference import PreferenceObjective


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"objective": "ppo"}, r"model.objective must be one of \('grpo', 'dpo'\), got 'ppo'"),
        ({"po_tokens": "audio"}, "model.po_tokens must be 'text', 'speech', 'all' or 'split', got 'audio'"),
        ({"po_tokens": "split", "objective": "dpo"}, "po_tokens 'split' .* use objective 'grpo'"),
        ({"loss_type": "sum"}, "model.loss_type must be one of .* got 'sum'"),
    ],
)
def test_bad_settings_name_their_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreferenceObjective(4, **kwargs)


@pytest.mark.parametrize(
    "kwargs, needs",
    [({}, False), ({"beta": 0.04}, True), ({"objective": "dpo"}, True), ({"po_tokens": "all"}, False)],
)
def test_the_reference_is_needed_for_a_kl_penalty_or_dpo(kwargs, needs):
    assert PreferenceObjective(4, **kwargs).needs_reference is needs
