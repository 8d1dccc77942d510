"""The GLM-4-Voice tokenizer plug-in's glue, against a stand-in `speech_tokenizer` package written to disk with the
interface of GLM-4-Voice's (WhisperVQEncoder.from_pretrained, extract_speech_token(model, feature_extractor,
[(audio (1, samples), sample_rate)]) -> one code list per utterance, see GLM-4-Voice speech_tokenizer/utils.py and
Kimi-Audio's kimia_infer/models/tokenizer/glm4_tokenizer.py). The real tokenizer needs its download; not run here."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from transformers import WhisperFeatureExtractor

from wavalign.audio.codec import SpeechCodec
from wavalign.audio.glm4_voice import Glm4VoiceTokenizer
from wavalign.audio.io import resample

MODELING = """
import json, os
import torch


class WhisperVQEncoder(torch.nn.Module):
    loads = 0

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.scale = torch.nn.Parameter(torch.tensor(float(config["scale"])))

    @classmethod
    def from_pretrained(cls, path):
        cls.loads += 1
        with open(os.path.join(path, "config.json")) as f:
            return cls(json.load(f))
"""
UTILS = '''
import torch


def extract_speech_token(model, feature_extractor, utts):
    """One code per 1280 samples at 16 kHz (12.5 Hz): the frame's energy, scaled, modulo the codebook."""
    out = []
    for audio, rate in utts:
        assert rate == 16000 and audio.dim() == 2
        frames = audio[0].split(1280)
        out.append([int(model.scale * (f ** 2).sum() * 1000) % 16384 for f in frames])
    return out
'''


@pytest.fixture
def standin(tmp_path):
    code = tmp_path / "GLM-4-Voice"
    (code / "speech_tokenizer").mkdir(parents=True)
    (code / "speech_tokenizer" / "__init__.py").write_text("")
    (code / "speech_tokenizer" / "modeling_whisper.py").write_text(MODELING)
    (code / "speech_tokenizer" / "utils.py").write_text(UTILS)
    weights = tmp_path / "glm-4-voice-tokenizer"
    weights.mkdir()
    (weights / "config.json").write_text(json.dumps({"scale": 3.0}))
    WhisperFeatureExtractor(feature_size=128).save_pretrained(str(weights))
    yield weights, code
    for name in [m for m in sys.modules if m == "speech_tokenizer" or m.startswith("speech_tokenizer.")]:
        del sys.modules[name]
    if str(code) in sys.path:
        sys.path.remove(str(code))


class Silence(SpeechCodec):
    sample_rate, num_codes, frame_rate = 24000, 16384, 12.5

    def encode(self, wav, sample_rate):
        raise NotImplementedError

    def decode(self, tokens):
        return np.zeros(len(tokens) * 1920, dtype=np.float32)


def test_encode_resamples_to_16k_and_runs_glm4_voice_code(standin):
    weights, code = standin
    codec = Glm4VoiceTokenizer(str(weights), str(code))
    wav = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1  # 1 s at 8 kHz
    tokens = codec.encode(wav, 8000)
    at16k = resample(wav, 8000, 16000)
    expected = [
        int(np.float32(3.0) * (at16k[i : i + 1280].astype(np.float32) ** 2).sum() * 1000) % 16384
        for i in range(0, 16000, 1280)
    ]
    assert tokens.dtype == np.int64 and len(tokens) == 13  # 12.5 Hz
    assert np.abs(tokens - np.asarray(expected)).max() <= 1  # float32 summation order may differ by one unit
    codec.encode(wav, 8000)
    assert sys.modules["speech_tokenizer.modeling_whisper"].WhisperVQEncoder.loads == 1  # loaded once
    assert (codec.num_codes, codec.frame_rate, codec.sample_rate) == (16384, 12.5, 16000)


def test_decode_needs_a_decoder_and_uses_it(standin):
    weights, code = standin
    with pytest.raises(NotImplementedError, match="encodes only: set its decoder"):
        Glm4VoiceTokenizer(str(weights), str(code)).decode(np.array([1, 2]))
    codec = Glm4VoiceTokenizer(str(weights), str(code), decoder=Silence())
    assert codec.sample_rate == 24000 and codec.decode(np.array([1, 2])).shape == (3840,)


def test_missing_folders_are_named(standin, tmp_path):
    weights, code = standin
    with pytest.raises(FileNotFoundError, match="glm-4-voice-tokenizer"):
        Glm4VoiceTokenizer(str(tmp_path / "nowhere"), str(code))
    with pytest.raises(FileNotFoundError, match="no speech_tokenizer/ package"):
        Glm4VoiceTokenizer(str(weights), str(tmp_path)).encode(np.zeros(1600, dtype=np.float32), 16000)
