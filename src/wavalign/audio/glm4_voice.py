"""GLM-4-Voice's speech tokenizer as a SpeechCodec (encode side): Kimi-Audio's and VITA-Audio's audio tokenizer.

THUDM/glm-4-voice-tokenizer turns 16 kHz speech into 12.5 codes a second from a 16384-entry codebook. Its model class
(WhisperVQEncoder, a Whisper encoder with pooling and a vector quantizer) is custom code that transformers does not
ship; it lives in the GLM-4-Voice repository's `speech_tokenizer/` package (Kimi-Audio vendors the same repository as
kimia_infer/models/tokenizer/glm4). This plug-in imports it from a local checkout and runs its extract_speech_token,
as Kimi-Audio's Glm4Tokenizer does. The decode side (codes -> waveform, Kimi-Audio's flow-matching detokenizer and
vocoder) is a separate model: give it as `decoder`, another SpeechCodec, or decode() says what is missing.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from wavalign.audio.codec import SpeechCodec
from wavalign.audio.io import resample

NUM_CODES = 16384
FRAME_RATE = 12.5
INPUT_RATE = 16000


def _import_from(code_path: Path, module: str) -> Any:
    """`module` of the package under code_path; an already imported one must come from there too."""
    package = module.split(".")[0]
    if not (code_path / package / "__init__.py").is_file() and not (code_path / package).is_dir():
        raise FileNotFoundError(
            f"{code_path} has no {package}/ package: clone GLM-4-Voice and set code_path to its folder"
        )
    if str(code_path) not in sys.path:
        sys.path.insert(0, str(code_path))
    loaded = importlib.import_module(module)
    origin = Path(getattr(loaded, "__file__", "") or "").resolve()
    if code_path.resolve() not in origin.parents:
        raise ImportError(f"{module} was already imported from {origin}, not from {code_path}")
    return loaded


class Glm4VoiceTokenizer(SpeechCodec):
    """GLM-4-Voice's speech tokenizer (16 kHz speech -> 12.5 codes a second, 16384 codes); loaded on first use.

    Args:
        path: Local folder of THUDM/glm-4-voice-tokenizer (config.json, weights, preprocessor_config.json).
        code_path: Local checkout of the GLM-4-Voice repository, holding its speech_tokenizer/ package (the model
            class is custom code that transformers does not ship).
        decoder: The SpeechCodec that turns codes back into audio, reading the same 16384 codes; needed by audio
            judges and audio logging only; None encodes only.
        device: Where the tokenizer runs: "cpu", "cuda" or "cuda:N".
    """

    num_codes = NUM_CODES
    frame_rate = FRAME_RATE

    def __init__(self, path: str, code_path: str, decoder: SpeechCodec | None = None, device: str = "cpu") -> None:
        self.path, self.code_path = Path(path), Path(code_path)
        if not self.path.is_dir():
            raise FileNotFoundError(
                f"GLM-4-Voice tokenizer folder {self.path} does not exist: download THUDM/glm-4-voice-tokenizer there"
            )
        if decoder is not None and decoder.num_codes != NUM_CODES:
            raise ValueError(f"the decoder reads {decoder.num_codes} codes, GLM-4-Voice's tokenizer writes {NUM_CODES}")
        self.decoder, self.device = decoder, device
        self._model: Any = None

    @property
    def sample_rate(self) -> int:  # type: ignore[override]
        """What decode() returns (the decoder's rate); encode() takes any rate and resamples to 16 kHz."""
        return self.decoder.sample_rate if self.decoder is not None else INPUT_RATE

    def _load(self) -> None:
        from transformers import WhisperFeatureExtractor

        modeling = _import_from(self.code_path, "speech_tokenizer.modeling_whisper")
        self._extract = _import_from(self.code_path, "speech_tokenizer.utils").extract_speech_token
        self._model = modeling.WhisperVQEncoder.from_pretrained(str(self.path)).eval().to(self.device)
        self._features = WhisperFeatureExtractor.from_pretrained(str(self.path))

    def encode(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        audio = torch.from_numpy(resample(np.asarray(wav, dtype=np.float32), sample_rate, INPUT_RATE)).unsqueeze(0)
        tokens = np.asarray(self._extract(self._model, self._features, [(audio, INPUT_RATE)])[0], dtype=np.int64)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= NUM_CODES):
            raise ValueError(f"the GLM-4-Voice tokenizer at {self.path} gave codes outside [0, {NUM_CODES})")
        return tokens

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        if self.decoder is None:
            raise NotImplementedError(
                "Glm4VoiceTokenizer encodes only: set its decoder to a SpeechCodec wrapping a detokenizer (Kimi-Audio's "
                "lives in its checkpoint folder, run by kimia_infer) to give audio judges and audio logs a waveform"
            )
        return self.decoder.decode(tokens)
