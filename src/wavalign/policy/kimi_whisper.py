"""Kimi-Audio's continuous prompt-audio features: Whisper encoder states, four 50 Hz frames per 12.5 Hz audio step.

Kimi-Audio feeds every prompt speech code together with a Whisper-large-v3 feature of the same 80 ms (its prompt
manager's extract_whisper_feat and WhisperEncoder.tokenize_waveform): the audio is cut into 30 s pieces, each piece
padded to 30 s for the log-mel front end, encoded, and the first 4 * ((samples - 1) // 1280 + 1) encoder frames kept;
four consecutive frames are concatenated into one 5120-wide row per code. Here transformers' WhisperFeatureExtractor
and WhisperModel encoder, loaded from the checkpoint's `whisper-large-v3` folder, do that work.

The log-mel front end's settings are Kimi-Audio's own when the folder has no preprocessor_config.json: kimia_infer
(models/tokenizer/whisper_Lv3/whisper.py) never reads that file but hard-codes 16 kHz audio, a 400-point FFT, a hop of
160 samples, 30 s pieces zero-padded to 480000 samples and 128 mel bins (log_mel_spectrogram's default, the
mel_128 filters of its mel_filters.npz); KIMI_MEL builds the same extractor from those numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import transformers
from torch import Tensor
from transformers import WhisperFeatureExtractor

from wavalign.audio.io import read_wav, resample
from wavalign.policy.sources import dtype_keyword

# kimia_infer's hard-coded front end (whisper_Lv3/whisper.py: SAMPLE_RATE, N_FFT, HOP_LENGTH, CHUNK_LENGTH,
# log_mel_spectrogram's n_mels and pad_or_trim's zero padding), as WhisperFeatureExtractor arguments
KIMI_MEL = dict(feature_size=128, sampling_rate=16000, n_fft=400, hop_length=160, chunk_length=30, padding_value=0.0)


def kimi_feature_extractor(folder: Path) -> WhisperFeatureExtractor:
    """The folder's preprocessor_config.json when it has one, else one built from Kimi-Audio's own settings."""
    if (folder / "preprocessor_config.json").is_file():
        return WhisperFeatureExtractor.from_pretrained(str(folder))
    return WhisperFeatureExtractor(**KIMI_MEL)


class WhisperFeatures:
    """Frozen Whisper feature extractor and encoder from a local folder (save_pretrained layout; without a
    preprocessor_config.json the extractor is Kimi-Audio's, KIMI_MEL). feature_dim: the width of one step's row
    (Kimi-Audio's kimia_adaptor_input_dim, 5120 = 4 frames of d_model 1280).
    Not an nn.Module on purpose: it is never trained nor checkpointed; calls move it to the device they ask for."""

    def __init__(self, path: str | Path, feature_dim: int, dtype: torch.dtype = torch.float32) -> None:
        from transformers import WhisperModel

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder} is not a Whisper folder (no config.json): Kimi-Audio ships it as "
                "<checkpoint>/whisper-large-v3; set the source's whisper_path"
            )
        self.extractor = kimi_feature_extractor(folder)
        # the keyword the installed transformers takes (torch_dtype before 4.56, e.g. the vita-audio extra's 4.48.3)
        dtype_kwarg = {dtype_keyword(transformers.__version__): dtype}
        self.encoder = WhisperModel.from_pretrained(str(folder), **dtype_kwarg).get_encoder().eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        mel_bins = int(self.encoder.config.num_mel_bins)
        if mel_bins != int(self.extractor.feature_size):
            raise ValueError(
                f"{folder}: the encoder reads {mel_bins} mel bins but the feature extractor makes "
                f"{self.extractor.feature_size} (Kimi-Audio's Whisper-large-v3: 128)"
            )
        d_model = int(self.encoder.config.d_model)
        if feature_dim < d_model or feature_dim % d_model:
            raise ValueError(
                f"the feature width {feature_dim} (kimia_adaptor_input_dim) is not a multiple of the Whisper width {d_model}"
            )
        self.frames_per_step = feature_dim // d_model
        self.sample_rate = int(self.extractor.sampling_rate)
        # the encoder's two convolutions halve the mel frame rate once: one encoder frame per 2 hops
        self.samples_per_step = int(self.extractor.hop_length) * 2 * self.frames_per_step
        self.calls = 0  # encoder forwards run so far (features are computed once per prompt, not per rollout)

    @property
    def dim(self) -> int:
        return int(self.encoder.config.d_model) * self.frames_per_step

    @torch.no_grad()
    def waveform(self, wav: np.ndarray, sample_rate: int, device: torch.device | str = "cpu") -> Tensor:
        """Mono waveform -> (steps, dim) features, one row per 12.5 Hz step (Kimi-Audio: per speech code)."""
        wav = resample(np.asarray(wav, dtype=np.float32), sample_rate, self.sample_rate)
        if wav.size == 0:
            raise ValueError("cannot compute Whisper features of an empty waveform")
        self.encoder.to(device)
        chunk = int(self.extractor.n_samples)
        rows = []
        for start in range(0, wav.size, chunk):
            piece = wav[start : start + chunk]
            steps = (piece.size - 1) // self.samples_per_step + 1
            mel = self.extractor(piece, sampling_rate=self.sample_rate, return_tensors="pt").input_features
            states = self.encoder(mel.to(device=device, dtype=self.encoder.dtype)).last_hidden_state[0]
            self.calls += 1
            kept = states[: steps * self.frames_per_step]
            if kept.shape[0] < steps * self.frames_per_step:
                raise ValueError(f"the Whisper encoder gave {kept.shape[0]} frames for {steps} steps of audio")
            rows.append(kept.reshape(steps, self.dim))
        return torch.cat(rows, dim=0)

    def file(self, path: str | Path, device: torch.device | str = "cpu") -> Tensor:
        wav, sr = read_wav(path)
        return self.waveform(wav, sr, device)
