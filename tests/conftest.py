import glob
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from wavalign.policy.interleaved import InterleavedPolicy
from wavalign.policy.lora import LoraSettings
from wavalign.policy.tiny import TinyQwen2

ROOT = Path(__file__).resolve().parent.parent
DEBUG_VOCAB = ROOT / "configs" / "data" / "debug_vocab.txt"
# a two-step `fit` of a debug config with nothing but the training: no validation, progress bar or callbacks, short
# replies (overlay tests: the hybrid rules, the worked examples of docs/extending.md)
QUICK_FIT = [
    "--trainer.max_steps=2",
    "--trainer.log_every_n_steps=1",
    "--trainer.limit_val_batches=0",
    "--trainer.enable_progress_bar=false",
    "--trainer.callbacks=[]",
    "--model.sampling.max_new_tokens=8",
]


def tiny_policy(lora: LoraSettings | None = None, seed: int = 0, num_speech_tokens: int = 64) -> InterleavedPolicy:
    source = TinyQwen2(
        vocab_file=str(DEBUG_VOCAB),
        num_speech_tokens=num_speech_tokens,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=64,
        seed=seed,
    )
    return InterleavedPolicy(
        source, num_speech_tokens=num_speech_tokens, text_chunks=[1, 4], speech_chunks=[8], lora=lora
    )


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under run_dir, as {tag: [(step, value), ...]}."""
    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(glob.glob(str(run_dir / "**" / "events.out.tfevents.*"), recursive=True)):
        ea = EventAccumulator(events)
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in ea.Scalars(tag))
    return out


@pytest.fixture
def root() -> Path:
    return ROOT
