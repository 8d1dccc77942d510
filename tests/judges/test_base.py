"""Judge requests carry speech codes and decode them where a judge first reads the audio."""

from __future__ import annotations

import pickle

import numpy as np

from wavalign.data.schema import DialogueExample
from wavalign.judges.base import Judge, JudgeRequest, JudgeScore
from wavalign.judges.combined import PooledJudge
from wavalign.judges.rules import AnswerJudge
from wavalign.policy.base import Reply
from wavalign.step.scoring import build_requests


class CountingCodec:
    """Decodes code c to 4 samples of value c / 100 and counts its calls in this process."""

    sample_rate = 8000
    calls = 0

    def decode(self, codes: np.ndarray) -> np.ndarray:
        CountingCodec.calls += 1
        return np.repeat(np.asarray(codes, dtype=np.float32) / 100, 4)


class LoudnessJudge(Judge):
    """5 for audio whose mean is over 0.05, else 1: needs the waveform."""

    def score(self, requests):
        return [JudgeScore(5.0 if r.reply_audio is not None and r.reply_audio.mean() > 0.05 else 1.0) for r in requests]


def requests_for(codes: list[list[int]]) -> list[JudgeRequest]:
    example = DialogueExample([{"role": "user", "content": "q"}], "a", question_text="q", reference_answer="a")
    return build_requests([example], [Reply("a", c) for c in codes], len(codes), CountingCodec())


def test_audio_is_decoded_once_on_first_read_and_survives_pickling():
    CountingCodec.calls = 0
    req = requests_for([[10, 20]])[0]
    assert CountingCodec.calls == 0 and req.sample_rate == 8000
    np.testing.assert_allclose(req.reply_audio, [0.1] * 4 + [0.2] * 4)
    req.reply_audio  # noqa: B018 - a second read is served from the request
    assert CountingCodec.calls == 1
    np.testing.assert_allclose(pickle.loads(pickle.dumps(requests_for([[30]])[0])).reply_audio, [0.3] * 4)
    assert JudgeRequest("q", "a").reply_audio is None
    assert requests_for([[]])[0].reply_audio is None  # a reply without speech has no audio


def test_text_judges_never_decode_and_pooled_judges_decode_in_their_workers():
    CountingCodec.calls = 0
    AnswerJudge().score(requests_for([[1], [2]]))
    assert CountingCodec.calls == 0
    judge = PooledJudge(LoudnessJudge(), workers=2)
    try:
        scores = judge.score(requests_for([[1, 2], [90, 80], [3], [70]]))
    finally:
        judge.close()
    assert [s.score for s in scores] == [1.0, 5.0, 1.0, 5.0]
    assert CountingCodec.calls == 0  # all decoding happened in the worker processes
