import lightning.pytorch as pl
import pytest
import torch
from conftest import ROOT, scalars, tiny_policy
from lightning.pytorch.loggers import TensorBoardLogger
from wiring_toys import KeyedJudge, hand_rewards

import wavalign.module as module_file
from wavalign.callbacks.gating import GateCallback
from wavalign.data.datamodule import WavAlignDataModule
from wavalign.data.schema import DialogueExample
from wavalign.gates import FixedGate
from wavalign.module import WavAlignModule
from wavalign.policy.base import SamplingConfig
from wavalign.step.losses import sft_loss


def examples():
    return [
        DialogueExample(
            messages=[{"role": "user", "content": "<|audio|>"}],
            prompt_speech=[[1, 2, 3, 4]],
            target_text=f"{a} plus {b} is {c}",
            target_speech=[5, 6, 7, 8, 9],
            question_text=f"what is {a} plus {b}",
            reference_answer=c,
        )
        for a, b, c in (("one", "two", "three"), ("two", "two", "four"))
    ]


def make_module(lam: float, po_tokens: str = "text") -> WavAlignModule:
    module = WavAlignModule(
        tiny_policy(seed=1),
        KeyedJudge(),
        group_size=4,
        sampling=SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=16),
        po_tokens=po_tokens,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.05),
    )
    gate = GateCallback(FixedGate(lam))
    gate.setup(None, module, "fit")
    return module


def test_one_step_lowers_sft_and_raises_best_rollout_text_logprob():
    torch.manual_seed(0)
    module = make_module(lam=0.5)
    exs = examples()
    loss = module.training_step({"ids": [0, 1], "examples": exs}, 0)
    entry = module.last_entry
    best = int(hand_rewards(module, exs).argmax())  # from the judge's own rule, not the module's advantages
    assert entry.advantages.rollouts[best] > 0
    text_mask = entry.rollouts.masks.text[best]

    def measures():
        with torch.no_grad():
            demo = entry.demonstrations
            sft = sft_loss(module.policy.token_logprobs(demo), demo.masks.completion).item()
            best_text = (module.policy.token_logprobs(entry.rollouts)[best] * text_mask).sum().item()
        return sft, best_text

    sft0, best0 = measures()
    opt = module.configure_optimizers()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sft1, best1 = measures()
    assert sft1 < sft0
    assert best1 > best0


def test_rollout_buffer_reuses_rollouts_for_ppo_epochs():
    torch.manual_seed(0)
    module = make_module(lam=1.0)
    module.buffer.reuse = 2
    batch = {"ids": [0, 1], "examples": examples()}
    module.training_step(batch, 0)
    first = module.last_entry
    module.training_step(batch, 1)
    assert module.last_entry is first and first.uses == 2
    module.training_step(batch, 2)
    assert module.last_entry is not first  # used up: sampled anew


def test_sft_only_gate_gives_no_gradient_through_po():
    torch.manual_seed(0)
    module = make_module(lam=0.0)
    loss = module.training_step({"ids": [0, 1], "examples": examples()}, 0)
    demo = module.last_entry.demonstrations
    expected = sft_loss(module.policy.token_logprobs(demo), demo.masks.completion)
    assert torch.allclose(loss, expected)


def test_pure_sft_warm_start_skips_sampling():
    module = make_module(lam=0.0)
    module.sample_when_sft_only = False
    module.policy.rollout = None  # any sampling would fail
    loss = module.training_step({"ids": [0, 1], "examples": examples()}, 0)
    assert loss.item() > 0 and module.last_entry is None


def test_a_codec_smaller_than_the_policy_speech_vocabulary_fails_at_start_up():
    from wavalign.judges.rules import AnswerJudge
    from wavalign.module import WavAlignModule

    class SmallCodec:
        num_codes, sample_rate = 16, 16000

    with pytest.raises(ValueError, match="emits 64 speech codes but model.codec .* decodes only 16"):
        WavAlignModule(tiny_policy(), AnswerJudge(), codec=SmallCodec())


def test_a_one_cycle_schedule_shorter_than_max_steps_fails_at_start_up():
    """OneCycleLR raises when stepped past total_steps: say so before training, naming both fields."""
    from functools import partial

    from lightning.pytorch import Trainer

    module = make_module(lam=0.5)
    module.scheduler_factory = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1e-3, total_steps=800)
    module.trainer = Trainer(max_steps=801, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match=r"total_steps=800 but trainer.max_steps=801"):
        module.configure_optimizers()
    module.trainer = Trainer(max_steps=800, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert module.configure_optimizers()["lr_scheduler"]["scheduler"].total_steps == 800


def test_the_module_names_no_gate_rule_and_no_rule_flag():
    """The module executes step plans: it never reads the rule, its flags or a rule class (the gate callback does)."""
    import ast
    import inspect

    import wavalign.gates as gates
    import wavalign.module as module_source

    tree = ast.parse(inspect.getsource(module_source))
    flags = {"rule", "fixed_lambda", "demo_in_group", "sum_terms", "needs_entropy", "even_across_processes"}
    rules = {name for name in gates.__all__ if name.endswith("Gate") or name in ("SFTOnly", "RLOnly")}
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert not attributes & flags and not (names | imported) & rules, (attributes & flags, (names | imported) & rules)


def test_entropy_is_computed_only_on_the_steps_lightning_logs(tmp_path, monkeypatch):
    """log_every_n_steps=2 over 4 steps: the training forward asks for entropies on steps 2 and 4 only, and the
    TensorBoard events still hold policy/entropy_text at exactly those steps."""
    asked: list[bool] = []
    original = module_file.step_logprobs

    def spy(*args, **kwargs):
        asked.append(kwargs["with_entropy"])
        return original(*args, **kwargs)

    monkeypatch.setattr(module_file, "step_logprobs", spy)
    torch.manual_seed(0)
    module = make_module(lam=0.5)
    data = WavAlignDataModule(str(ROOT / "configs/data/debug_train.jsonl"), batch_size=2)
    trainer = pl.Trainer(
        max_steps=4,
        log_every_n_steps=2,
        logger=TensorBoardLogger(str(tmp_path), name="entropy", version=0),
        callbacks=[GateCallback(FixedGate(0.5))],
        accelerator="cpu",
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    assert asked == [False, True, False, True]
    logged = scalars(tmp_path / "entropy")
    assert [step for step, _ in logged["policy/entropy_text"]] == [1, 3]  # Lightning's 0-based global steps


def test_a_lambda_zero_gate_samples_only_where_its_rollouts_are_read_and_trains_the_same(tmp_path, monkeypatch):
    """sft_only's rollouts feed only logged statistics and rollout callbacks: with log_every_n_steps=3 and a gradient
    geometry callback every 4 steps, six steps sample on steps 0, 2, 4 and 5 (0-based), and the weights after them
    are bit for bit those of plain SFT steps (the rollouts never reach the loss)."""
    from wavalign.callbacks.geometry import GradientGeometryCallback

    sampled: list[int] = []
    original = WavAlignModule.make_entry

    def spy(self, *args, **kwargs):
        sampled.append(self.trainer.global_step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WavAlignModule, "make_entry", spy)

    def train(sample: bool, name: str) -> WavAlignModule:
        torch.manual_seed(0)
        module = make_module(lam=0.0)
        module.sample_when_sft_only = sample
        data = WavAlignDataModule(str(ROOT / "configs/data/debug_train.jsonl"), batch_size=2)
        trainer = pl.Trainer(
            max_steps=6,
            log_every_n_steps=3,
            logger=TensorBoardLogger(str(tmp_path), name=name, version=0),
            callbacks=[GateCallback(FixedGate(0.0)), GradientGeometryCallback(every_n_steps=4)],
            accelerator="cpu",
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
        )
        trainer.fit(module, data)
        return module

    sampling = train(True, "sampling")
    assert sampled == [0, 2, 4, 5]
    logged = scalars(tmp_path / "sampling")
    assert [step for step, _ in logged["reward/mean"]] == [2, 5] and [s for s, _ in logged["grad/norm_text"]] == [0, 4]
    sampled.clear()
    plain = train(False, "plain")
    assert sampled == []
    for (name, a), (_, b) in zip(sampling.policy.state_dict().items(), plain.policy.state_dict().items()):
        assert torch.equal(a, b), name
