"""BenchmarkCallback: IQ / EQ / WER by hand on scripted replies, on the real tiny policy with audio prompts, and
through `python -m wavalign validate` on the debug config."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from chat_server import chat_server, user_text, write_prompts
from conftest import ROOT, tiny_policy
from toys import ScriptedASR, ToyCodec
from voicebench_checkout import write_checkout

from wavalign.benchmarks.generic import GenericSuite
from wavalign.benchmarks.official_judges import VoiceBenchJudge, VStyleJudge
from wavalign.benchmarks.voicebench_source import ENV_VAR
from wavalign.benchmarks.voicebench_suite import VoiceBenchSuite
from wavalign.benchmarks.vstyle_suite import VStyleSuite
from wavalign.callbacks.benchmark import BenchmarkCallback
from wavalign.judges.base import Judge, JudgeScore
from wavalign.judges.rules import AnswerJudge
from wavalign.module import WavAlignModule
from wavalign.policy.base import Reply, SamplingConfig

DATA = Path(__file__).resolve().parent.parent / "data" / "benchmarks"
KEY = dict(allow_no_key=True, api_key_env="", backoff_s=0.0, max_retries=1)
GENERIC = GenericSuite("qa", str(DATA / "generic_qa.jsonl"))
VSTYLE = VStyleSuite("vstyle", str(DATA / "vstyle_metadata.jsonl"), language="en")

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
    without = BenchmarkCallback([GENERIC], wer="off").evaluate(None, scripted())
    assert without["eval/iq"] == pytest.approx(75.0) and "eval/wer" not in without
    judged = GenericSuite("qa", GENERIC.path, iq_judge=ScriptedJudge({"mornings are lovely": 5.0}))
    cb = BenchmarkCallback([judged], wer="off")
    v = cb.evaluate(None, scripted())
    # the open generic item judged 5 -> correctness 1.0
    assert v["eval/qa/iq"] == pytest.approx(100 * 4 / 5) and v["eval/iq"] == pytest.approx(100 * 4 / 5)


def official_server(body):
    """VoiceBench votes / ratings and VStyle scores, scripted on the request's text."""
    text = user_text(body)
    if "<candidate>" in text:  # the miniature checkout's prompts (tests/voicebench_checkout.py)
        right = any(f"<candidate>{c}</candidate>" in text for c in ("Shakespeare", "8 legs", "the Pacific"))
        return ["Yes", "Yes", "No"] if right else ["No", "no", "Yes"]
    if "[Q] " in text:
        return ["5", "4", "[[3]]"] if "Tell me a joke." in text else ["2", "2", "2"]
    return ["Final: [[4]]"] if "[empathy]" in text else ["[[2]]"]


def test_official_suites_log_in_their_own_units(tmp_path):
    """VoiceBench sd-qa (3-vote LLM judge), alpacaeval (3-sample 1-5 score), openbookqa (templates + seeded guess)
    and VStyle (per-category prompt, [[n]], weighted) through the callback, beside the generic suite whose eval/iq
    stays as it was. Expected values by hand from MatthewCYM/VoiceBench api_judge.py + src/evaluator/{qa,open,mcq}.py
    (with the miniature checkout's tables and prompts) and alibaba/vstyle lalm_eval/gemini_eval.py."""
    vb_dir = str(write_checkout(tmp_path))
    alpaca = tmp_path / "alpacaeval.jsonl"
    alpaca.write_text('{"prompt": "Tell me a joke."}\n{"prompt": "Plan a trip."}\n', encoding="utf-8")
    texts = {q: t for q, (t, _) in REPLIES.items()} | {
        "Who wrote Hamlet?": "Shakespeare",
        "What is the capital of France?": "Lyon",
        "How many legs does a spider have?": "8 legs",
        "Which ocean is the largest?": "the Pacific",
        "Tell me a joke.": "Why did the chicken cross the road?",
        "Plan a trip.": "Go somewhere.",
        "Which of these is a mammal? A. shark B. whale C. trout D. octopus": "I think it's B, because...",
        "What do plants need to make food? A. sunlight B. sand C. salt D. smoke": "b",
        "Which melts first in the sun? A. a rock B. a nail C. an ice cube D. a brick": "The answer is: **C**",
        "Sound travels fastest through A. air B. a vacuum C. water D. steel": "Paris",
        "A compass needle points toward A. the moon B. magnetic north C. the sun D. the equator": "The reply is a dog",
    }
    vstyle_questions = [json.loads(line)["instruct_text"] for line in Path(VSTYLE.path).read_text().splitlines()]
    module = ScriptedModule(
        {q: Reply(t, []) for q, t in texts.items()} | {q: Reply("Sure.", [1, 2]) for q in vstyle_questions},
        scripted().judge,
        ToyCodec(),
    )
    with chat_server(official_server) as server:
        vb = dict(judge=VoiceBenchJudge(server.url, voicebench_dir=vb_dir, **KEY), voicebench_dir=vb_dir)
        suites = [
            GENERIC,
            VoiceBenchSuite("sdqa", str(DATA / "voicebench_sd-qa.jsonl"), "sd-qa", **vb),
            VoiceBenchSuite("alpaca", str(alpaca), "alpacaeval", **vb),
            VoiceBenchSuite("obqa", str(DATA / "voicebench_openbookqa.jsonl"), "openbookqa", **vb),
            VStyleSuite(
                "vstyle",
                VSTYLE.path,
                VStyleJudge(server.url, "judge", str(write_prompts(tmp_path)), **KEY),
                language="en",
            ),
        ]
        cb = BenchmarkCallback(suites, wer="off")
        v = cb.evaluate(None, module)
    assert v["eval/iq"] == pytest.approx(75.0) and v["eval/qa/iq"] == pytest.approx(75.0)  # the generic suite only
    assert v["eval/voicebench/sd-qa"] == pytest.approx(60.0)  # Shakespeare, 8 legs, the Pacific: voted right
    assert v["eval/voicebench/alpacaeval"] == pytest.approx((4.0 + 2.0) / 2)  # 1-5, not rescaled
    guess = random.Random(0).choice("ABCD")  # the callback's seed 0; 'Paris' is the only guess
    assert v["eval/voicebench/openbookqa"] == pytest.approx(100 * (2 + (guess == "D")) / 5)
    assert v["eval/voicebench/openbookqa/guess_rate"] == 20.0 and "eval/voicebench/overall" not in v  # 3 of 9 subsets
    w = {"speed": 0.125 / 6, "emotion": 0.25 / 3, "character": 0.125, "sadness": 0.0625}
    assert v["eval/vstyle/empathy"] == 4.0 and v["eval/vstyle/role_play/character"] == 2.0
    expected = (2 * (w["speed"] + w["emotion"] + w["character"]) + 4 * w["sadness"]) / sum(w.values())
    assert v["eval/vstyle/overall"] == pytest.approx(expected)
    assert "eval/sdqa/iq" not in v and "eval/vstyle/iq" not in v and "eval/sdqa/eq" in v
    sdqa = VoiceBenchSuite("sdqa", str(DATA / "voicebench_sd-qa.jsonl"), "sd-qa")
    with pytest.raises(ValueError, match=r"VoiceBench's sd-qa is scored by an LLM judge; set the suite's judge"):
        BenchmarkCallback([GENERIC, sdqa]).setup(None, None, "validate")
    with pytest.raises(ValueError, match="VStyle is scored by its LALM judge; set the suite's judge"):
        BenchmarkCallback([VSTYLE]).setup(None, None, "validate")


def test_rule_scored_voicebench_suites_need_a_checkout_at_setup(tmp_path, monkeypatch):
    """bbh / openbookqa / mmsu / advbench are scored by VoiceBench's own tables, which are not shipped: without a
    checkout the suite is refused at setup, saying what to fetch; suites that do not need them still set up."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    obqa = VoiceBenchSuite("obqa", str(DATA / "voicebench_openbookqa.jsonl"), "openbookqa")
    with pytest.raises(
        ValueError,
        match=r"suite 'obqa' \(VoiceBench openbookqa\) needs VoiceBench's own rule tables.*"
        rf"git clone https://github.com/MatthewCYM/VoiceBench.*{ENV_VAR}",
    ):
        BenchmarkCallback([GENERIC, obqa]).setup(None, None, "validate")
    BenchmarkCallback([GENERIC]).setup(None, None, "validate")
    monkeypatch.setenv(ENV_VAR, str(write_checkout(tmp_path)))
    cb = BenchmarkCallback([obqa])
    cb.setup(None, None, "validate")
    assert obqa.rules is not None and obqa.rules.mcq_answer("pick c!") == "C"
    monkeypatch.delenv(ENV_VAR)
    ifeval = tmp_path / "ifeval.jsonl"  # ifeval needs the checkout only for constrained_response's options
    row = {"key": 1, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    ifeval.write_text(json.dumps(row) + "\n", encoding="utf-8")
    BenchmarkCallback([VoiceBenchSuite("if", str(ifeval), "ifeval")]).setup(None, None, "fit")
    row["instruction_id_list"] = ["detectable_format:constrained_response"]
    ifeval.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"suite 'if' \(VoiceBench ifeval\) needs VoiceBench's own rule tables"):
        BenchmarkCallback([VoiceBenchSuite("if", str(ifeval), "ifeval")]).setup(None, None, "fit")


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
    judged = GenericSuite("qa", GENERIC.path, iq_judge=ScriptedJudge({"mornings are lovely": 4.0}))
    cb = BenchmarkCallback([judged], wer="off", iq_samples=3)
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
    cb = BenchmarkCallback([GenericSuite("x", str(DATA / "missing.jsonl"))])
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        cb.setup(None, None, "fit")


def test_real_policy_with_spoken_prompts_is_repeatable_and_leaves_the_training_rng_alone(tmp_path):
    vb_dir = str(write_checkout(tmp_path))
    module = WavAlignModule(
        tiny_policy(seed=3), AnswerJudge(), codec=ToyCodec(), sampling=SamplingConfig(max_new_tokens=16)
    )
    with chat_server(lambda body: ["Yes", "Yes", "No"] if "<gold>" in user_text(body) else ["[[3]]"]) as server:
        vb = dict(judge=VoiceBenchJudge(server.url, voicebench_dir=vb_dir, **KEY), voicebench_dir=vb_dir, max_items=2)
        suites = [
            GenericSuite("qa", GENERIC.path, max_items=3),
            VoiceBenchSuite("sdqa", str(DATA / "voicebench_sd-qa.jsonl"), "sd-qa", **vb),
            VoiceBenchSuite("obqa", str(DATA / "voicebench_openbookqa.jsonl"), "openbookqa", **vb),
            VStyleSuite(
                "vstyle",
                VSTYLE.path,
                VStyleJudge(server.url, "judge", str(write_prompts(tmp_path)), **KEY),
                max_items=2,
            ),
        ]
        cb = BenchmarkCallback(suites, wer="reference", batch_size=8)
        torch.manual_seed(123)
        first = cb.evaluate(None, module)
        after = torch.rand(3)
        torch.manual_seed(123)
        assert torch.equal(torch.rand(3), after)  # evaluation sampled under a forked RNG
        assert cb.evaluate(None, module) == first  # same seed, same replies, same numbers
    assert module.speech._codes  # the spoken questions went through the codec
    assert 0.0 <= first["eval/iq"] <= 100.0 and 1.0 <= first["eval/eq"] <= 5.0 and first["eval/wer"] >= 0.0
    assert "eval/qa/iq" in first and "eval/sdqa/iq" not in first and "eval/sdqa/eq" in first  # official units only
    assert first["eval/voicebench/sd-qa"] == 100.0 and 0.0 <= first["eval/voicebench/openbookqa"] <= 100.0
    assert first["eval/voicebench/openbookqa/guess_rate"] >= 0.0
    assert first["eval/vstyle/acoustic_attributes/speed"] == 3.0 and first["eval/vstyle/overall"] == pytest.approx(3.0)
    assert "eval/vstyle/iq" not in first and first["eval/eq_unreliable"] == 0.0  # pooled over the generic items


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
    module = ScriptedModule(
        {q: Reply(t, [i]) for i, (q, t) in enumerate(zip(questions, texts))}, ScriptedJudge({}), SentenceCodec(spoken)
    )
    cb = BenchmarkCallback(
        [GenericSuite("debug", str(ROOT / "configs/data/debug_bench.jsonl"))], asr_sentences_file=str(sentences)
    )
    cb.setup(None, module, "validate")
    assert cb.evaluate(None, module)["eval/wer"] == pytest.approx(1 / 30)  # 6 replies x 5 words


def test_official_judges_are_configured_from_yaml_as_the_cli_does(tmp_path, monkeypatch):
    """The YAML shape of docs/reference.md (class_path / init_args) builds both judges through jsonargparse."""
    import yaml
    from jsonargparse import ArgumentParser

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("GEMINI_API_KEY", "g-test")
    config = yaml.safe_load(f"""
    callback:
      class_path: wavalign.callbacks.benchmark.BenchmarkCallback
      init_args:
        suites:
          - class_path: wavalign.benchmarks.voicebench_suite.VoiceBenchSuite
            init_args:
              name: ifeval
              subset: ifeval
              path: x.jsonl
              skip_unsupported: true
              voicebench_dir: {write_checkout(tmp_path)}
              judge:
                class_path: wavalign.benchmarks.official_judges.VoiceBenchJudge
                init_args: {{base_url: "http://127.0.0.1:9/v1", voicebench_dir: {write_checkout(tmp_path)}}}
          - class_path: wavalign.benchmarks.vstyle_suite.VStyleSuite
            init_args:
              name: vstyle
              path: y.jsonl
              judge:
                class_path: wavalign.benchmarks.official_judges.VStyleJudge
                init_args: {{base_url: "http://127.0.0.1:9/v1", model: gemini-2.5-pro, prompt_dir: {write_prompts(tmp_path)}}}
    """)
    parser = ArgumentParser()
    parser.add_argument("--callback", type=BenchmarkCallback)
    cb = parser.instantiate_classes(parser.parse_object(config)).callback
    voicebench, vstyle = cb.suites
    assert voicebench.judge.samples == 3 and voicebench.judge.client.model == "gpt-4o-mini"
    assert vstyle.judge.client.url == "http://127.0.0.1:9/v1/chat/completions" and voicebench.skip_unsupported
    assert voicebench.voicebench_dir == str(tmp_path / "VoiceBench")
    assert voicebench.judge.prompts["system"] == "Be a fair grader."  # read from the checkout
