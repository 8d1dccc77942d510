"""Gradient geometry: the callback's norms and cosine equal a direct backward() computation on a tiny model, and the
real step's .grad is left alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_policy
from wiring_toys import KeyedJudge

from wavalign.callbacks.gating import GateCallback
from wavalign.callbacks.geometry import GradientGeometryCallback, geometry
from wavalign.data.schema import DialogueExample
from wavalign.gates import FixedGate
from wavalign.module import WavAlignModule
from wavalign.policy.base import SamplingConfig
from wavalign.step.losses import policy_loss

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to")  # training_step's self.log outside a Trainer


def stepped_module(beta: float = 0.0) -> WavAlignModule:
    """A module after one training step's forward (rollouts, advantages, old log-probs), as the callback sees it."""
    torch.manual_seed(0)
    module = WavAlignModule(
        tiny_policy(seed=2),
        KeyedJudge(),
        group_size=4,
        beta=beta,
        sampling=SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=24),
    )
    GateCallback(FixedGate(0.5)).setup(None, module, "fit")
    if beta > 0:
        module.policy.setup_reference()
    examples = [
        DialogueExample(
            messages=[{"role": "user", "content": "<|audio|>"}],
            prompt_speech=[[1, 2, 3]],
            target_text="one plus two is three",
            target_speech=[4, 5, 6],
            question_text="q",
        )
    ] * 2
    module.training_step({"ids": [0, 1], "examples": examples}, 0)
    return module


def direct(module: WavAlignModule) -> dict[str, float]:
    """Independent path: loss.backward() into .grad for each modality mask, then flatten, norms, cosine."""
    entry, params = module.last_entry, [p for p in module.parameters() if p.requires_grad]
    module.eval()
    flat = {}
    for name in ("text", "speech"):
        module.zero_grad(set_to_none=True)
        logp = module.policy.token_logprobs(entry.rollouts)
        policy_loss(
            logp,
            entry.advantages.rollouts,
            getattr(entry.rollouts.masks, name),
            old_logp=entry.old_logp,
            ref_logp=entry.ref_logp,
            beta=module.preference.beta,
            epsilon=module.preference.epsilon,
        ).loss.backward()
        flat[name] = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().double() for p in params]
        )
    module.zero_grad(set_to_none=True)
    module.train()
    a, b = flat["text"], flat["speech"]
    return {
        "grad/norm_text": float(a.norm()),
        "grad/norm_speech": float(b.norm()),
        "grad/cos_text_speech": float(a @ b / (a.norm() * b.norm())),
    }


@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_callback_matches_direct_autograd_and_leaves_grad_alone(beta):
    module = stepped_module(beta)
    masks = module.last_entry.rollouts.masks
    assert masks.text.sum() > 0 and masks.speech.sum() > 0  # both modalities present: the cosine is defined
    sentinel = [torch.full_like(p, 7.0) for p in module.parameters()]
    for p, s in zip(module.parameters(), sentinel):
        p.grad = s.clone()
    cb = GradientGeometryCallback(every_n_steps=1)
    cb.on_before_optimizer_step(SimpleNamespace(global_step=0, loggers=[]), module, None)
    assert all(torch.equal(p.grad, s) for p, s in zip(module.parameters(), sentinel))
    assert module.training  # mode restored
    expected = direct(module)
    assert cb.last.keys() == expected.keys()
    for key, value in expected.items():
        assert cb.last[key] == pytest.approx(value, abs=1e-6, rel=1e-6), key
    assert cb.last["grad/norm_text"] > 0 and -1.0 <= cb.last["grad/cos_text_speech"] <= 1.0


def test_runs_every_n_steps_only():
    module = stepped_module()
    cb = GradientGeometryCallback(every_n_steps=3)
    for step in range(5):
        cb.last = {}
        cb.on_before_optimizer_step(SimpleNamespace(global_step=step, loggers=[]), module, None)
        assert bool(cb.last) == (step % 3 == 0), step


def test_geometry_by_hand():
    g = geometry({"text": torch.tensor([3.0, 4.0]), "speech": torch.tensor([4.0, -3.0])})
    assert g == {"grad/norm_text": 5.0, "grad/norm_speech": 5.0, "grad/cos_text_speech": 0.0}
    g = geometry({"text": torch.tensor([1.0, 1.0]), "speech": torch.tensor([-2.0, -2.0])})
    assert g["grad/cos_text_speech"] == pytest.approx(-1.0)
    assert "grad/cos_text_speech" not in geometry({"text": torch.tensor([1.0, 0.0]), "speech": torch.zeros(2)})
