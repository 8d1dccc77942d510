"""RolloutAudioLogger writes real TensorBoard audio and text summaries during a real (tiny) fit."""

from __future__ import annotations

import glob
import io

import lightning.pytorch as pl
import pytest
import soundfile as sf
import torch
from conftest import ROOT, tiny_policy
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from toys import ToyCodec

from wavalign.callbacks.audio_log import RolloutAudioLogger
from wavalign.callbacks.gating import GateCallback
from wavalign.data.datamodule import WavAlignDataModule
from wavalign.judges.rules import AnswerJudge
from wavalign.module import WavAlignModule
from wavalign.policy.base import SamplingConfig


def test_audio_and_text_land_in_the_event_file(tmp_path):
    torch.manual_seed(0)
    module = WavAlignModule(
        tiny_policy(seed=4),
        AnswerJudge(),
        codec=ToyCodec(),
        group_size=4,
        sampling=SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=24),
    )
    data = WavAlignDataModule(str(ROOT / "configs/data/debug_train.jsonl"), batch_size=2)
    logger = TensorBoardLogger(str(tmp_path), name="audio", version=0)
    audio_log = RolloutAudioLogger(every_n_steps=1, max_samples=8)
    trainer = pl.Trainer(
        max_steps=1,
        logger=logger,
        callbacks=[GateCallback(), audio_log],
        accelerator="cpu",
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    replies = module.last_entry.replies
    spoken = [i for i, r in enumerate(replies) if r.speech_codes]
    assert spoken, "the sampled replies hold no speech codes; change the seed"

    (events,) = glob.glob(str(tmp_path / "audio" / "version_0" / "events.out.tfevents.*"))
    ea = EventAccumulator(events, size_guidance={"audio": 0, "tensors": 0})
    ea.Reload()
    assert sorted(ea.Tags()["audio"]) == sorted(f"audio/sample_{i}" for i in spoken)
    clip = ea.Audio(f"audio/sample_{spoken[0]}")[0]
    assert clip.step == 0 and clip.sample_rate == ToyCodec.sample_rate
    wav, sr = sf.read(io.BytesIO(clip.encoded_audio_string))
    assert sr == ToyCodec.sample_rate and len(wav) == len(replies[spoken[0]].speech_codes) * sr // 50
    texts = [t for t in ea.Tags()["tensors"] if t.startswith("audio/sample_")]
    assert len(texts) == 8  # the text of every sample, spoken or not
    text = ea.Tensors(texts[0])[0].tensor_proto.string_val[0].decode()
    assert "**reply:**" in text and "**advantage:**" in text


def test_warns_once_without_a_tensorboard_logger():
    cb = RolloutAudioLogger(every_n_steps=1)
    with pytest.warns(UserWarning, match="no TensorBoardLogger"):
        assert cb._writer(pl.Trainer(logger=False, enable_progress_bar=False)) is None
