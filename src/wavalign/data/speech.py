"""Audio files -> codec token ids, cached per file: a prompt's audio is encoded once per run, not once per epoch.

Every failure names the data row ("file:line"): no codec for a row with audio, a file that cannot be read, samples
that are NaN or infinite (a codec would turn them into garbage codes or fail without naming the file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wavalign.audio.codec import SpeechCodec
from wavalign.data.schema import DialogueExample


class SpeechTokenCache:
    def __init__(self, codec: SpeechCodec | None) -> None:
        self.codec = codec
        self._codes: dict[Path, list[int]] = {}

    def codes(self, path: Path, where: str) -> list[int]:
        if path not in self._codes:
            if self.codec is None:
                raise ValueError(f"{where}: the example has audio ({path}) but no codec is configured (model.codec)")
            from wavalign.audio.io import read_wav

            try:
                wav, sr = read_wav(path)
            except (ValueError, FileNotFoundError) as e:
                raise ValueError(f"{where}: {e}") from None
            if not np.isfinite(wav).all():
                raise ValueError(f"{where}: audio file {path} holds NaN or infinite samples")
            try:
                self._codes[path] = [int(c) for c in self.codec.encode(wav, sr)]
            except Exception as e:  # a codec's own failure, whatever its type, must still name the row
                raise ValueError(f"{where}: the codec cannot encode {path}: {type(e).__name__}: {e}") from e
        return self._codes[path]

    def prompt_speech(self, ex: DialogueExample) -> list[list[int]]:
        if ex.prompt_speech is not None:
            return ex.prompt_speech
        return [self.codes(p, ex.source) for p in ex.audios]

    def target_speech(self, ex: DialogueExample) -> list[int]:
        if ex.target_speech is not None:
            return ex.target_speech
        return self.codes(ex.target_audio, ex.source) if ex.target_audio is not None else []
