"""Adding a benchmark is one suite class: the worked example of docs/extending.md (`KeywordSuite`), run end to end by
BenchmarkCallback beside a generic suite, from Python and from YAML; and the protocol's pieces (`Sums`)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
import torch
from doc_blocks import doc_module

import wavalign.callbacks.benchmark as callback_module
from wavalign.benchmarks import BenchmarkItem, load_generic
from wavalign.benchmarks.generic import GenericSuite
from wavalign.benchmarks.suite import Sums
from wavalign.callbacks.benchmark import BenchmarkCallback
from wavalign.judges.base import Judge, JudgeScore
from wavalign.policy.base import Reply, SamplingConfig

DATA = Path(__file__).resolve().parent.parent / "data" / "benchmarks"


# ---- the worked example (docs/extending.md) -------------------------------------------------------------------------
KeywordSuite = doc_module("my_suites").KeywordSuite  # the class exactly as docs/extending.md shows it


# ---- a module with scripted replies (what the callback uses of a WavAlignModule) ------------------------------------
REPLIES = {
    "what is two plus three": "five, says the sun",
    "what is four plus four": "eight",
    "name a primary colour": "blue as the Sun's sky",
    "which planet is closest to the sun? A. Venus B. Mercury C. Mars D. Earth": "The answer is B.",
    "tell me something nice about mornings": "mornings are lovely",
}


class FixedJudge(Judge):
    def score(self, requests):
        return [JudgeScore(3.0) for _ in requests]


class ScriptedModule:
    device = torch.device("cpu")
    eval_sampling = SamplingConfig()
    codec = None

    def __init__(self) -> None:
        self.judge, self.policy = FixedJudge(), self

    def prompts(self, examples):
        return [ex.question_text for ex in examples]

    def rollout(self, prompts, group_size, sampling):
        return [q for q in prompts for _ in range(group_size)]

    def decode(self, batch):
        return [Reply(REPLIES[q], []) for q in batch]


def test_a_new_suite_is_one_class_and_runs_beside_the_generic_one():
    path = str(DATA / "generic_qa.jsonl")
    suites = [
        GenericSuite("qa", path),
        KeywordSuite("sun", path, keyword="Sun"),
        KeywordSuite("blue", path, keyword="blue", max_items=3),
    ]
    v = BenchmarkCallback(suites, wer="off", batch_size=2).evaluate(None, ScriptedModule())
    assert v["eval/sun/keyword_rate"] == pytest.approx(100 * 2 / 5)  # both keyword suites share one tally
    assert v["eval/blue/keyword_rate"] == pytest.approx(100 * 1 / 3)
    assert v["eval/iq"] == pytest.approx(100.0) and v["eval/qa/iq"] == 100.0  # the generic suite's items only
    assert v["eval/sun/eq"] == 3.0 and "eval/sun/iq" not in v  # EQ for every suite; IQ only where a suite gives one


def test_the_example_is_configured_from_yaml():
    import yaml
    from jsonargparse import ArgumentParser

    config = yaml.safe_load(f"""
    callback:
      class_path: wavalign.callbacks.benchmark.BenchmarkCallback
      init_args:
        wer: "off"
        suites:
          - class_path: wavalign.benchmarks.generic.GenericSuite
            init_args: {{name: qa, path: {DATA / "generic_qa.jsonl"}}}
          - class_path: {KeywordSuite.__module__}.KeywordSuite
            init_args: {{name: sun, path: {DATA / "generic_qa.jsonl"}, keyword: sun}}
    """)
    parser = ArgumentParser()
    parser.add_argument("--callback", type=BenchmarkCallback)
    cb = parser.instantiate_classes(parser.parse_object(config)).callback
    assert [type(s).__name__ for s in cb.suites] == ["GenericSuite", "KeywordSuite"]
    assert cb.evaluate(None, ScriptedModule())["eval/sun/keyword_rate"] == pytest.approx(40.0)


# ---- the protocol's pieces ------------------------------------------------------------------------------------------
def test_sums_line_up_by_declared_name_and_refuse_undeclared_ones():
    t = Sums(["b:n", "a:n", "b:n"])
    t.add("b:n", 2.0)
    assert t.vector() == [0.0, 2.0]  # sorted, each name once: every process's vector has the same layout
    t.load([5.0, 7.0])
    assert t.sums == {"a:n": 5.0, "b:n": 7.0}
    with pytest.raises(KeyError):
        t.add("c:n")


def test_the_callback_names_no_suite_class_and_no_kind():
    """Its code, docstrings aside (they may cite the built-in suites as examples)."""
    tree = ast.parse(inspect.getsource(callback_module))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            body[0] = ast.Pass()
    assert not re.search(r"GenericSuite|VoiceBench|VStyle|\.kind\b|voicebench|vstyle", ast.unparse(tree), re.I)


def test_items_must_carry_their_suites_name():
    class Misnamed(KeywordSuite):
        def load(self) -> list[BenchmarkItem]:
            return load_generic(self.path, "other", self.max_items)

    with pytest.raises(ValueError, match=r"suite 'sun' \(Misnamed\) loaded items named \['other'\]"):
        BenchmarkCallback([Misnamed("sun", str(DATA / "generic_qa.jsonl"), "sun")]).setup(None, None, "fit")
