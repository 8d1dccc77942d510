"""Benchmark loaders on the hand-written samples in tests/data/benchmarks, and their errors (file:line: field)."""

from pathlib import Path

import pytest

from wavalign.audio.io import read_wav
from wavalign.benchmarks import BenchmarkError, BenchmarkItem, correctness, extract_choice, load_benchmark
from wavalign.data.schema import AUDIO_PLACEHOLDER

DATA = Path(__file__).resolve().parent.parent / "data" / "benchmarks"


def test_generic_sample():
    items = load_benchmark("generic", DATA / "generic_qa.jsonl", "qa")
    assert len(items) == 5 and {it.benchmark for it in items} == {"qa"}
    spoken = items[0]
    assert spoken.audio == (DATA / "audio" / "two_plus_three.wav").resolve() and spoken.references == ("five",)
    wav, sr = read_wav(spoken.audio)
    assert sr == 8000 and len(wav) / sr > 0.5  # a real spoken question
    assert items[1].audio is None and items[1].style == "cheerful" and items[1].system_prompt == "style: cheerful"
    assert items[2].references == ("red", "blue", "yellow") and items[2].category == "colours"
    assert items[3].answer_type == "choice" and items[3].references == ("B",)
    assert items[4].references == () and items[4].category == "open"
    assert items[0].source.endswith("generic_qa.jsonl:1")


def test_items_become_prompts_with_audio_placeholders_or_question_text():
    spoken, styled = load_benchmark("generic", DATA / "generic_qa.jsonl", "qa", max_items=2)
    ex = spoken.as_example()
    assert ex.messages == [{"role": "user", "content": AUDIO_PLACEHOLDER}] and ex.audios == [spoken.audio]
    assert ex.question_text == "what is two plus three" and ex.reference_answer == "five"
    ex = styled.as_example()
    assert ex.messages == [
        {"role": "system", "content": "style: cheerful"},
        {"role": "user", "content": "what is four plus four"},
    ]
    assert ex.audios == [] and ex.style == "cheerful"


def test_voicebench_sd_qa_sample():
    items = load_benchmark("voicebench", DATA / "voicebench_sd-qa.jsonl", "sdqa", subset="sd-qa")
    assert [it.category for it in items] == ["usa", "usa", "gbr", "gbr", "aus"]
    assert items[0].audio.name == "hamlet.wav" and items[1].audio.name == "two_plus_three.wav"  # {"path": ...} form
    assert items[0].references == ("William Shakespeare",) and items[0].question == "Who wrote Hamlet?"
    assert all(it.answer_type == "text" for it in items) and items[2].audio is None


def test_voicebench_multiple_choice_subset():
    items = load_benchmark("voicebench", DATA / "voicebench_openbookqa.jsonl", "obqa", subset="openbookqa")
    assert [it.references for it in items] == [("B",), ("A",), ("C",), ("D",), ("B",)]
    assert all(it.answer_type == "choice" and it.category == "openbookqa" for it in items)


def test_vstyle_sample():
    """Rows as in alibaba/vstyle's metadata.jsonl (id, instruct_id, ability, instruct_text), the audio as the
    Hugging Face audio folder's file_name (or instruct_audio / audio)."""
    items = load_benchmark("vstyle", DATA / "vstyle_metadata.jsonl", "vstyle")
    assert len(items) == 5 and all(it.references == () and it.kind == "vstyle" for it in items)
    assert items[0].category == "acoustic_attributes/speed" and items[0].audio.name == "cheerful.wav"
    assert items[1].audio.name == "two_plus_three.wav" and items[2].audio.name == "hamlet.wav"
    assert items[3].audio.name == "cheerful.wav" and items[0].row_id == "711"  # {"path": ...} form
    assert items[1].style == items[1].question == "Say 'good morning' as cheerfully as you can."
    english = load_benchmark("vstyle", DATA / "vstyle_metadata.jsonl", "vstyle", language="en")
    assert [it.category for it in english] == [
        "acoustic_attributes/speed",
        "instruction/emotion",
        "role_play/character",
        "empathy/sadness_disappointment",
    ]


def test_voicebench_rows_keep_what_their_scorer_needs(tmp_path):
    bbh = write(tmp_path, '{"prompt": "p", "reference": "(B)", "id": "hyperbaton_12"}')
    item = load_benchmark("voicebench", bbh, "b", subset="bbh")[0]
    assert item.row_id == "hyperbaton_12" and item.subset == "bbh" and item.kind == "voicebench"


def test_max_items_keeps_file_order():
    items = load_benchmark("voicebench", DATA / "voicebench_sd-qa.jsonl", "sdqa", max_items=2, subset="sd-qa")
    assert [it.question for it in items] == ["Who wrote Hamlet?", "What is the capital of France?"]


def write(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "bench.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "kind, lines, message",
    [
        (
            "vstyle",
            ['{"id": 1, "ability": "instruction/style", "instruct_text": "t", "wav": "a.wav"}'],
            r"bench.jsonl:1: give the instruction audio in one of \['file_name', 'instruct_audio', 'audio'\] \(the row has fields",
        ),
        (
            "vstyle",
            ['{"id": 1, "ability": "acoustic/speed", "instruct_text": "t", "file_name": "a.wav"}'],
            r"bench.jsonl:1: field 'ability' must be one of VStyle's",
        ),
        (
            "generic",
            ['{"question": "q", "answer": "a"}', '{"answer": "a"}'],
            r"bench.jsonl:2: missing field 'question'",
        ),
        ("generic", ['{"question": "q", "audio": "nope.wav"}'], r"bench.jsonl:1: field 'audio' names 'nope.wav'"),
        (
            "generic",
            ['{"question": "q", "answer": "a", "answers": ["b"]}'],
            r"bench.jsonl:1: give either field 'answer'",
        ),
        ("generic", ['{"question": "q", "answers": []}'], r"bench.jsonl:1: field 'answers' must be a non-empty list"),
        ("generic", ['{"question": "q", "answer_type": "number"}'], r"bench.jsonl:1: field 'answer_type'"),
        (
            "generic",
            [
                '{"question": "q"',
            ],
            r"bench.jsonl:1: not valid JSON",
        ),
        ("voicebench", ['{"prompt": "p", "reference": 3}'], r"bench.jsonl:1: field 'reference' must be a string"),
        (
            "vstyle",
            ['{"id": 1, "ability": "role_play/scenario", "file_name": "a.wav"}'],
            r"bench.jsonl:1: missing field 'instruct_text'",
        ),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, kind, lines, message):
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark(kind, write(tmp_path, *lines), "b", subset="sd-qa" if kind == "voicebench" else None)


@pytest.mark.parametrize(
    "subset, line, message",
    [
        (
            "bbh",
            '{"prompt": "p", "reference": "no", "id": "date_understanding_3"}',
            r"bench.jsonl:1: field 'id' must name a bbh task",
        ),
        (
            "bbh",
            '{"prompt": "p", "reference": "maybe", "id": "navigate_3"}',
            r"field 'reference' must be yes, no, \(A\) or \(B\)",
        ),
        (
            "mmsu",
            '{"prompt": "p", "reference": "b"}',
            r"bench.jsonl:1: field 'reference' must be one choice letter A-D",
        ),
        (
            "ifeval",
            '{"prompt": "p", "instruction_id_list": ["change_case:capital_word_frequency"], "kwargs": [{}]}',
            r"bench.jsonl:1: ifeval instruction 'change_case:capital_word_frequency' is not checked here",
        ),
        ("sd-qa", '{"prompt": "p"}', r"bench.jsonl:1: missing field 'reference' \(subset sd-qa\)"),
    ],
)
def test_voicebench_rows_its_scorer_could_not_score_are_refused(tmp_path, subset, line, message):
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark("voicebench", write(tmp_path, line), "b", subset=subset)


def test_configuration_errors(tmp_path):
    path = write(tmp_path, '{"prompt": "p", "reference": "Paris"}')
    with pytest.raises(BenchmarkError, match="bench.jsonl:1: field 'reference' must be one choice letter"):
        load_benchmark("voicebench", path, "b", subset="mmsu")
    with pytest.raises(BenchmarkError, match=r"VoiceBench needs 'subset', one of .*; got 'sdqa'"):
        load_benchmark("voicebench", path, "b", subset="sdqa")
    with pytest.raises(BenchmarkError, match="VoiceBench needs 'subset'"):
        load_benchmark("voicebench", path, "b")
    with pytest.raises(BenchmarkError, match="subset 'mtbench' is not supported: VoiceBench has no evaluator"):
        load_benchmark("voicebench", path, "b", subset="mtbench")
    with pytest.raises(BenchmarkError, match="kind must be one of"):
        load_benchmark("librispeech", path, "b")
    with pytest.raises(BenchmarkError, match="'subset' only applies to kind 'voicebench'"):
        load_benchmark("generic", path, "b", subset="sd-qa")
    with pytest.raises(FileNotFoundError, match="missing.jsonl does not exist"):
        load_benchmark("generic", tmp_path / "missing.jsonl", "b")


def item(refs: tuple[str, ...], answer_type: str = "text") -> BenchmarkItem:
    return BenchmarkItem("q", None, refs, "b", answer_type=answer_type)


def test_correctness_rules():
    assert correctness(item(("five",)), "two plus three is five") == 1.0
    assert correctness(item(("five",)), "it is fifty") == 0.0
    assert correctness(item(("William Shakespeare",)), "Hamlet was written by William Shakespeare.") == 1.0
    assert correctness(item(("William Shakespeare",)), "Shakespeare") == 0.0  # every reference word must appear
    assert correctness(item(("red", "blue")), "Blue!") == 1.0  # any reference will do
    assert correctness(item(()), "anything") is None
    assert correctness(item(("B",), "choice"), "The answer is B.") == 1.0
    assert correctness(item(("B",), "choice"), "the answer is a bee") == 0.0
    # final: only the end counts, so restating the question's candidates earns nothing
    assert correctness(item(("nine",), "final"), "the bigger of three and nine is nine") == 1.0
    assert correctness(item(("nine",), "final"), "the bigger of three and nine is three") == 0.0
    assert correctness(item(("new york",), "final"), "It is New York.") == 1.0
    assert correctness(item(("red", "blue"), "final"), "the sky is blue") == 1.0


@pytest.mark.parametrize(
    "reply, letter",
    [
        ("The answer is B.", "B"),
        ("option (c)", "C"),
        ("B. Paris", "B"),
        ("I pick (D) here", "D"),
        ("answer: C", "C"),
        ("the answer is a dog", None),
        ("A dog has four legs", None),
        ("no idea", None),
    ],
)
def test_extract_choice(reply, letter):
    assert extract_choice(reply) == letter
