"""BenchmarkCallback: IQ / EQ / WER by hand on scripted replies, on the real tiny policy with audio prompts, and
through `python -m wavalign validate` on the debug config."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from toys import ScriptedASR, ToyCodec

from conftest import ROOT, tiny_policy
from wavalign.callbacks.benchmark import BenchmarkCallback, BenchmarkSuite
from wavalign.judges.base import Judge, JudgeScore
from wavalign.judges.rules import AnswerJudge
from wavalign.module import WavAlignModule
from wavalign.policy.base import Reply, SamplingConfig

DATA = Path(__file__).resolve().parent.parent / "data" / "benchmarks"
GENERIC = BenchmarkSuite("qa", str(DATA / "generic_qa.jsonl"))
VSTYLE = BenchmarkSuite("vstyle", str(DATA / "vstyle_metadata.jsonl"), kind="vstyle", language="en")

REPLIES = {  # question -> (reply, EQ judge score; None = unreliable)
    "what is two plus three": ("two plus three is five", 4.0),
    "what is four plus four": ("it is nine", 2.0),
    "name a primary colour": ("blue is one", 5.0),
    "which planet is closest to the sun? A. Venus B. Mercury C. Mars D. Earth": ("The answer is B.", 3.0),
    "tell me something nice about mornings": ("mornings are lovely", None),
}


class ScriptedJudge(Judge):
    def __init__(self, scores: dict[str, float | None], default: float = 3.0) -> None:
        self.scores, self.default = scores, default

    def score(self, requests):
        out = []
        for r in requests:
            s = self.scores.get(r.reply_text, self.default)
            out.append(JudgeScore(2.5, reliable=False) if s is None else JudgeScore(s))
        return out


class ScriptedModule:
    """What the callback uses of a WavAlignModule, with one fixed reply per question (its own policy)."""

    device = torch.device("cpu")
    eval_sampling = SamplingConfig()

    def __init__(self, replies: dict[str, Reply], judge: Judge, codec=None) -> None:
        self.replies, self.judge, self.codec, self.policy = replies, judge, codec, self

    def prompts(self, examples):
        return [ex.question_text for ex in examples]

    def rollout(self, prompts, group_size, sampling):
        assert group_size == 1
        return list(prompts)

    def decode(self, batch):
        return [self.replies.get(q, Reply("", [])) for q in batch]


def scripted(codes: dict[str, list[int]] | None = None, codec=None) -> ScriptedModule:
    codes = codes or {}
    replies = {q: Reply(text, codes.get(q, [])) for q, (text, _) in REPLIES.items()}
    return ScriptedModule(replies, ScriptedJudge({text: s for text, s in REPLIES.values()}), codec)


def test_iq_eq_and_reference_wer_by_hand():
    cb = BenchmarkCallback([GENERIC], wer="reference", by_category=True, batch_size=2)
    v = cb.evaluate(None, scripted())
    # correct: five yes, eight no, a primary colour yes, choice B yes; the open question has no reference
    assert v["eval/iq"] == pytest.approx(75.0) and v["eval/qa/iq"] == pytest.approx(75.0)
    assert v["eval/eq"] == pytest.approx((4 + 2 + 5 + 3) / 4) and v["eval/eq_unreliable"] == pytest.approx(1 / 5)
    # reply text vs first reference: 4 insertions / 1 word; 1 sub + 2 ins / 1; 1 sub + 2 ins / 1 (choice: no WER)
    assert v["eval/wer"] == pytest.approx(10 / 3)
    assert v["eval/qa/arithmetic/iq"] == pytest.approx(50.0) and v["eval/qa/arithmetic/wer"] == pytest.approx(7 / 2)
    assert v["eval/qa/colours/iq"] == 100.0 and v["eval/qa/science/eq"] == 3.0
    assert "eval/qa/open/iq" not in v and "eval/qa/open/eq" not in v  # no reference, unreliable score: nothing


def test_open_ended_items_count_toward_iq_only_through_the_iq_judge():
    without = BenchmarkCallback([GENERIC, VSTYLE], wer="off").evaluate(None, scripted())
    assert "eval/vstyle/iq" not in without and without["eval/iq"] == pytest.approx(75.0)
    assert without["eval/vstyle/eq"] == 3.0 and "eval/wer" not in without  # unscripted replies: default score 3
    cb = BenchmarkCallback([GENERIC, VSTYLE], wer="off", iq_judge=ScriptedJudge({"mornings are lovely": 5.0}))
    v = cb.evaluate(None, scripted())
    # vstyle: 4 English items, judged 3 -> correctness 0.5; the open generic item judged 5 -> 1.0
    assert v["eval/vstyle/iq"] == pytest.approx(50.0)
    assert v["eval/qa/iq"] == pytest.approx(100 * 4 / 5) and v["eval/iq"] == pytest.approx(100 * (4 + 2) / 9)


class ManySamplesModule(ScriptedModule):
    """Scripted replies per sample: question -> the k replies the policy gives, in order."""

    def __init__(self, replies: dict[str, list[str]], judge: Judge) -> None:
        super().__init__({}, judge)
        self.samples = replies

    def rollout(self, prompts, group_size, sampling):
        return [(q, j) for q in prompts for j in range(group_size)]  # item i owns rows i*k .. i*k+k-1

    def decode(self, batch):
        return [Reply(self.samples.get(q, [""] * 3)[j], []) for q, j in batch]


def test_iq_samples_average_correctness_over_k_replies_and_score_eq_on_the_first():
    samples = {
        "what is two plus three": ["two plus three is five", "it is six", "five"],  # 2 of 3 right
        "what is four plus four": ["it is eight", "eight", "eight"],  # 3 of 3
        "name a primary colour": ["green", "grey", "blue"],  # 1 of 3
        "which planet is closest to the sun? A. Venus B. Mercury C. Mars D. Earth": ["A", "C", "D"],  # 0 of 3
        "tell me something nice about mornings": ["mornings are lovely", "no", "no"],  # open: first reply, judged
    }
    judge = ScriptedJudge({"two plus three is five": 5.0, "it is eight": 1.0, "green": 3.0, "A": 3.0}, default=2.0)
    cb = BenchmarkCallback([GENERIC], wer="off", iq_samples=3, iq_judge=ScriptedJudge({"mornings are lovely": 4.0}))
    v = cb.evaluate(None, ManySamplesModule(samples, judge))
    assert v["eval/iq"] == pytest.approx(100 * (2 / 3 + 1 + 1 / 3 + 0 + 3 / 4) / 5)
    per_item = torch.tensor([2 / 3, 1, 1 / 3, 0, 3 / 4], dtype=torch.float64)  # the SE is over items, not replies
    assert v["eval/iq_se"] == pytest.approx(100 * float(per_item.std() / math.sqrt(5)))
    assert v["eval/eq"] == pytest.approx((5 + 1 + 3 + 3 + 2) / 5)  # the first replies only
    with pytest.raises(ValueError, match="iq_samples"):
        BenchmarkCallback([GENERIC], iq_samples=0)


def test_speech_text_wer_transcribes_the_decoded_reply_speech():
    codes = {"what is two plus three": [1, 2, 3], "what is four plus four": [4, 5]}  # 3 and 2 frames of audio
    asr = ScriptedASR({3: "two plus three is fine", 2: "it is"})
    cb = BenchmarkCallback([GENERIC], wer="speech_text", asr=asr)
    v = cb.evaluate(None, scripted(codes, ToyCodec()))
    # 1 sub / 5 words; 1 deletion / 3 words; three replies without speech: all their words missing (3 + 4 + 3)
    assert asr.calls == 2
    assert v["eval/wer"] == pytest.approx((1 + 1 + 3 + 4 + 3) / (5 + 3 + 3 + 4 + 3))


def test_speech_text_wer_without_asr_is_skipped_with_a_warning():
    cb = BenchmarkCallback([GENERIC])
    with pytest.warns(UserWarning, match="speech-text WER needs an ASR"):
        v = cb.evaluate(None, scripted())
    assert "eval/wer" not in v and "eval/iq" in v


def test_bad_configuration_fails_early():
    with pytest.raises(ValueError, match="wer must be one of"):
        BenchmarkCallback([GENERIC], wer="speech")
    with pytest.raises(ValueError, match="names must be unique"):
        BenchmarkCallback([GENERIC, GENERIC])
    cb = BenchmarkCallback([BenchmarkSuite("x", str(DATA / "missing.jsonl"))])
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        cb.setup(None, None, "fit")


def test_real_policy_with_spoken_prompts_is_repeatable_and_leaves_the_training_rng_alone():
    module = WavAlignModule(tiny_policy(seed=3), AnswerJudge(), codec=ToyCodec(), sampling=SamplingConfig(max_new_tokens=16))
    suites = [BenchmarkSuite("qa", GENERIC.path, max_items=3),
              BenchmarkSuite("sdqa", str(DATA / "voicebench_sd-qa.jsonl"), "voicebench", max_items=2, subset="sd-qa"),
              BenchmarkSuite("obqa", str(DATA / "voicebench_openbookqa.jsonl"), "voicebench", max_items=2, subset="openbookqa"),
              BenchmarkSuite("vstyle", VSTYLE.path, "vstyle", max_items=2)]  # fmt: skip
    cb = BenchmarkCallback(suites, wer="reference", batch_size=8)
    torch.manual_seed(123)
    first = cb.evaluate(None, module)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after)  # evaluation sampled under a forked RNG
    assert cb.evaluate(None, module) == first  # same seed, same replies, same numbers
    assert module.speech._codes  # the spoken questions went through the codec
    assert 0.0 <= first["eval/iq"] <= 100.0 and 1.0 <= first["eval/eq"] <= 5.0 and first["eval/wer"] >= 0.0
    for name in ("qa", "sdqa", "obqa"):
        assert f"eval/{name}/iq" in first
    assert "eval/vstyle/iq" not in first and first["eval/eq_unreliable"] == pytest.approx(2 / 9)  # no reference


class SentenceCodec:
    """Code i decodes to sentence i spoken by espeak-ng: a decoder whose speech is known word for word."""

    sample_rate = 16000

    def __init__(self, sentences: list[str]) -> None:
        from wavalign.audio.tts import synthesize

        self.audio = [synthesize(s, sample_rate=self.sample_rate)[0] for s in sentences]

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        return np.concatenate([self.audio[int(t)] for t in tokens])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_speech_text_wer_with_the_offline_asr_on_real_speech(tmp_path):
    pytest.importorskip("pocketsphinx")
    rows = [json.loads(line) for line in (ROOT / "configs/data/debug_bench.jsonl").read_text().splitlines()]
    questions = [r["question"] for r in rows]
    spoken = [f"{r['question'].removeprefix('what is ')} is {r['answer']}" for r in rows]  # "four plus four is eight"
    texts = list(spoken)
    texts[1] = "one plus four is six"  # the text says six where the speech says five: one substitution
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(spoken + [texts[1]]) + "\n")
    module = ScriptedModule({q: Reply(t, [i]) for i, (q, t) in enumerate(zip(questions, texts))}, ScriptedJudge({}),
                            SentenceCodec(spoken))  # fmt: skip
    cb = BenchmarkCallback([BenchmarkSuite("debug", str(ROOT / "configs/data/debug_bench.jsonl"))],
                           asr_sentences_file=str(sentences))  # fmt: skip
    cb.setup(None, module, "validate")
    assert cb.evaluate(None, module)["eval/wer"] == pytest.approx(1 / 30)  # 6 replies x 5 words
