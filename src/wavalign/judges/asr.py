"""Speech-text consistency: does the reply's speech say its text? Offline ASR (pocketsphinx with the task's
language model) on the decoded speech, word error rate (jiwer) against the reply's text."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from wavalign.judges.base import Judge, JudgeRequest, JudgeScore


class AsrConsistencyJudge(Judge):
    """Scores whether a reply's speech says its text: score = 1 + 4 (1 - min(WER, 1)); parts: wer.

    A reply with no audio scores 1 (its speech says nothing).

    Args:
        sentences_file: Text file with one sentence per line, the task's possible replies: the offline ASR's
            language model is built from them (the world's prepare step writes .cache/world/sentences.txt).
        cache_dir: Folder where the ASR's language-model and dictionary files are kept between runs; None builds
            them in a per-process temporary folder each run.
    """

    def __init__(self, sentences_file: str, cache_dir: str | None = None) -> None:
        from wavalign.audio.asr import TaskASR

        path = Path(sentences_file)
        if not path.is_file():
            raise FileNotFoundError(f"ASR sentences file {path} does not exist (the world's prepare step writes it)")
        lines = [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
        if not lines:
            raise ValueError(f"{path}: no sentences for the ASR language model")
        self.asr = TaskASR(lines, cache_dir=cache_dir)

    def score_one(self, req: JudgeRequest) -> JudgeScore:
        from wavalign.audio.asr import word_error_rate

        if req.reply_audio is None or len(req.reply_audio) == 0:
            return JudgeScore(1.0, parts={"wer": 1.0})
        wer = min(1.0, word_error_rate(req.reply_text, self.asr.transcribe(req.reply_audio, req.sample_rate)))
        return JudgeScore(1.0 + 4.0 * (1.0 - wer), parts={"wer": wer})

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        return [self.score_one(r) for r in requests]
