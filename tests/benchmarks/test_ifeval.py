"""IFEval checks as VoiceBench's ifeval evaluator runs them (src/evaluator/ifeval.py:
test_instruction_following_strict / _loose, and instruction_following_eval/instructions.py check_following), on
replies whose verdicts were derived by hand."""

import pytest

from wavalign.benchmarks.ifeval import IfevalError, follows, instruction_args

OPTIONS = ("Yep, final.", "Nope, final.")  # constrained_response's options: a checkout's, here written by hand


def one(iid, reply, **args):
    strict, loose = follows(reply, instruction_args([iid], [args], "row"), OPTIONS)
    return strict[0], loose[0]


@pytest.mark.parametrize(
    "iid, args, reply, strict, loose",
    [
        ("punctuation:no_comma", {}, "No commas here", True, True),
        ("punctuation:no_comma", {}, "Well, no", False, False),
        ("keywords:existence", {"keywords": ["cat", "sun"]}, "The CAT sat in the sun.", True, True),
        ("keywords:frequency", {"keyword": "go", "frequency": 2, "relation": "at least"}, "go go", True, True),
        ("keywords:frequency", {"keyword": "go", "frequency": 2, "relation": "less than"}, "go go", False, False),
        ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "badly done", True, True),  # \b: whole words only
        (
            "keywords:letter_frequency",
            {"letter": "a", "let_frequency": 3, "let_relation": "at least"},
            "A banana",
            True,
            True,
        ),
        ("length_constraints:number_words", {"num_words": 4, "relation": "less than"}, "one two, three", True, True),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "first *** second", True, True),
        ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "a *** *** b", False, False),  # empty middle
        ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name] at [address]", True, True),
        ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hi.\np.s. bye", True, True),
        ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n- two", True, True),
        ("detectable_format:constrained_response", {}, "Nope, final.", True, True),
        ("detectable_format:constrained_response", {}, "Nope.", False, False),
        ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*a* and **b**", True, True),
        (
            "detectable_format:multiple_sections",
            {"section_spliter": "Section", "num_sections": 2},
            "Section 1 a Section 2 b",
            True,
            True,
        ),
        ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', True, True),
        ("detectable_format:title", {}, "<<My Title>> text", True, True),
        ("combination:two_responses", {}, "one ****** two", True, True),
        ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi"}, "say hi. Hi!", True, True),
        ("startend:end_checker", {"end_phrase": "Any questions?"}, '"Done. Any questions?"', True, True),
        ("startend:quotation", {}, '"quoted"', True, True),
        # loose only: passes once the first line (a chatty preamble) is removed
        ("startend:quotation", {}, 'Sure:\n"quoted"', False, True),
        # loose only: passes once the '*' are removed (the bold markers break the end phrase)
        ("startend:end_checker", {"end_phrase": "the end"}, "This is **the end**", False, True),
        ("punctuation:no_comma", {}, "", False, False),  # an empty reply follows nothing
        # langdetect, as upstream (seeded here); text it cannot classify counts as followed
        (
            "language:response_language",
            {"language": "fr"},
            "Bonjour, je voudrais un café au lait, s'il vous plaît.",
            True,
            True,
        ),
        (
            "language:response_language",
            {"language": "fr"},
            "Hello, I would like a coffee with milk, please.",
            False,
            False,
        ),
        ("language:response_language", {"language": "fr"}, "123 456", True, True),
        ("change_case:english_capital", {}, "THIS IS ALL CAPS ENGLISH TEXT ABOUT THE WEATHER TODAY.", True, True),
        ("change_case:english_capital", {}, "This Is Not All Caps.", False, False),
        ("change_case:english_lowercase", {}, "hello there my friend, how are you doing today?", True, True),
    ],
)
def test_checks(iid, args, reply, strict, loose):
    assert one(iid, reply, **args) == (strict, loose)


def test_response_markers_are_stripped_and_falsy_kwargs_dropped():
    # upstream strips a leading <1>/<2>/<3> and a trailing <|user|>; kwargs with None values are dropped
    instructions = instruction_args(["startend:quotation", "punctuation:no_comma"], [{"end_phrase": None}, {}], "r")
    assert instructions == [("startend:quotation", {}), ("punctuation:no_comma", {})]
    assert follows('<1>"hello"<|user|>', instructions) == ([True, True], [True, True])


@pytest.mark.parametrize(
    "ids, kwargs, message",
    [
        (
            ["length_constraints:number_sentences"],
            [{"num_sentences": 2, "relation": "less than"}],
            "'length_constraints:number_sentences' is not checked here",
        ),
        (
            ["change_case:capital_word_frequency"],
            [{"capital_frequency": 2, "capital_relation": "at least"}],
            "needs nltk",
        ),
        (["language:response_language"], [{}], r"needs kwargs \['language'\]"),
        (["keywords:nonsense"], [{}], "unknown ifeval instruction id 'keywords:nonsense'"),
        (["keywords:frequency"], [{"keyword": "x"}], r"needs kwargs \['frequency', 'relation'\]"),
        (["punctuation:no_comma"], [], "must be a list of 1 objects"),
        ([], [], "must be a non-empty list"),
        (
            ["length_constraints:nth_paragraph_first_word"],
            [{"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}],
            "must lie in 1..num_paragraphs",
        ),
    ],
)
def test_refused_rows(ids, kwargs, message):
    with pytest.raises(IfevalError, match=message):
        instruction_args(ids, kwargs, "f.jsonl:3")


def test_constrained_response_needs_a_checkouts_options():
    """IFEval's answer options are upstream text (instructions.py _CONSTRAINED_RESPONSE_OPTIONS): without them the
    check is refused, never guessed."""
    instructions = instruction_args(["detectable_format:constrained_response"], [{}], "r")
    with pytest.raises(IfevalError, match="needs IFEval's answer options from a VoiceBench checkout"):
        follows("Yep, final.", instructions)
    assert follows("  Yep, final. ", instructions, OPTIONS) == ([True], [True])
