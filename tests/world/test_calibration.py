"""The calibration probe's figures by hand, and the probe over a module whose replies are scripted."""

from types import SimpleNamespace

import pytest
import torch

from wavalign.data.schema import DialogueExample
from wavalign.policy.base import Reply
from wavalign.world.__main__ import main
from wavalign.world.calibration import format_report, probe, summarise


def test_histogram_success_and_equal_groups_by_hand():
    correct = [
        [True, True, False, False, True, True, True, True],  # 6/8; groups (mixed, all right)
        [False] * 8,  # 0/8; groups (all wrong, all wrong)
        [False, False, False, True, False, False, False, False],  # 1/8; groups (mixed, all wrong)
    ]
    graded = [
        [5, 5, 1, 2, 5, 5, 5, 5],
        [1, 2, 1, 1, 1, 1, 1, 1],  # the first group is mixed under the graded judge
        [1, 1, 1, 5, 2.5, 2.5, 2.5, 2.5],
    ]
    c = summarise(correct, graded, group_size=4)
    assert c.histogram == {0: 1, 1: 1, 2: 0, 3: 0, 4: 0, 5: 0, 6: 1, 7: 0, 8: 0}
    assert c.success == pytest.approx(7 / 24) and c.solved_ever == pytest.approx(2 / 3)
    assert c.equal_binary == pytest.approx(4 / 6)  # all right; all wrong x 2; all wrong
    assert c.equal_graded == pytest.approx(3 / 6)  # all 5; 1 1 1 1; 2.5 x 4
    assert c.graded_mean == pytest.approx(sum(map(sum, graded)) / 24)
    assert "1/8 right:    1 prompts" in format_report(c)
    with pytest.raises(ValueError, match="same number"):
        summarise([[True] * 3], [[5.0] * 3], group_size=4)


class Scripted:
    """A module whose i-th reply to a prompt is the i-th of its script (what calibration reads of one)."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script, self.group_size, self.sampling = script, 2, None
        self.policy = SimpleNamespace(rollout=self.rollout, decode=lambda batch: batch)

    def prompts(self, examples):
        return [ex.question_text for ex in examples]

    def rollout(self, prompts, samples, sampling):
        torch.rand(1)  # draws from the forked RNG like a policy does
        return [Reply(t, []) for p in prompts for t in self.script[p][:samples]]


def test_probe_scores_each_prompts_replies_against_its_answer():
    examples = [
        DialogueExample(messages=[], target_text="", question_text="what is one plus one", reference_answer="two"),
        DialogueExample(messages=[], target_text="", question_text="what color is snow", reference_answer="white"),
    ]
    module = Scripted(
        {
            "what is one plus one": ["one plus one is two", "one plus one is three"],
            "what color is snow": ["snow is white", "snow is white"],
        }
    )
    state = torch.random.get_rng_state()
    c = probe(module, examples, samples=2, batch_size=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert c.histogram == {0: 0, 1: 1, 2: 1} and c.equal_binary == 0.5
    assert c.graded_mean == pytest.approx((5 + 4.0 + 5 + 5) / 4)  # "three" for "two": restated, a number, one off


def test_calibrate_needs_a_checkpoint(tmp_path, capsys):
    assert main(["calibrate", "--checkpoint", str(tmp_path / "nope.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err
