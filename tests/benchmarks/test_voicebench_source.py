"""Reading VoiceBench's tables from a checkout (upstream's layout: MatthewCYM/VoiceBench src/evaluator/bbh.py
BBHEvaluator.extract_answer_* chains, mcq.py MCQEvaluator.extract_answer, harm.py HarmEvaluator.__init__
self.refusal_string, api_judge.py meta_prompt_open / meta_prompt_qa and the system message), on the miniature
checkout of tests/voicebench_checkout.py, whose tables are known entry by entry."""

import pytest
from voicebench_checkout import BBH, write_checkout

from wavalign.benchmarks.voicebench_source import ENV_VAR, VoiceBenchSourceError, read_tables


def test_tables_are_read_literal_by_literal_in_order(tmp_path):
    t = read_tables(write_checkout(tmp_path))
    assert t["bbh"]["hyperbaton"] == {
        "rules": [
            ["eq", "b", 0],
            ["in", "is (b)", 1],
            ["in", "is (a)", 0],
            ["re", "pick (.+?) first", 0],
            ["start", "a ", 0],
        ],
        "otherwise": "random",
        "yes_no_first": False,
    }
    assert t["bbh"]["yes_no"] == {
        "rules": [["in", "verdict no", 0], ["in", "verdict yes", 1]],
        "otherwise": None,
        "yes_no_first": False,
    }
    assert t["bbh"]["web_of_lies"]["rules"] == [["end", "is lying", 0], ["eq", "truthful", 1]]
    assert t["bbh"]["navigate"]["yes_no_first"] and t["bbh"]["sports_understanding"]["otherwise"] == "random"
    assert t["mcq_templates"] == [
        "it's [CHOICE],",
        ": **[CHOICE]**",
        "the reply is [CHOICE]",
        "pick [CHOICE]!",
        "[CHOICE] for sure",
    ]
    assert t["mcq_specials"] == [["in", "my final letter is a", "A"]]
    assert t["refusal_strings"] == ["I'm sorry", "no cando", "ILLEGAL"]  # adjacent literals joined, as Python does
    assert t["judge"]["open"].startswith("\nRate this reply") and t["judge"]["open"].endswith("{response}\n")
    assert t["judge"]["qa"].startswith("<question>") and t["judge"]["qa"].endswith("Say Yes or No.")  # .strip()
    assert t["judge"]["system"] == "Be a fair grader."
    assert t["constrained_options"] == ["Yep, final.", "Nope, final."]


def test_without_a_checkout_the_message_says_what_to_fetch(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(
        VoiceBenchSourceError,
        match=rf"suite 'b' needs .*git clone https://github.com/MatthewCYM/"
        rf"VoiceBench.*voicebench_dir.*{ENV_VAR}",
    ):
        read_tables(None, "suite 'b'")
    monkeypatch.setenv(ENV_VAR, str(write_checkout(tmp_path)))  # the environment variable stands in for the setting
    assert read_tables(None)["mcq_specials"] == [["in", "my final letter is a", "A"]]


def test_incomplete_or_reshaped_checkouts_are_refused_naming_the_file(tmp_path):
    root = write_checkout(tmp_path / "a")
    (root / "api_judge.py").unlink()
    with pytest.raises(VoiceBenchSourceError, match=r"lacks \['api_judge.py'\]"):
        read_tables(root)
    reshaped = BBH.replace("elif response == 'truthful':", "elif len(response) > 40:")
    with pytest.raises(VoiceBenchSourceError, match=r"bbh.py:\d+: a branch that is not"):
        read_tables(write_checkout(tmp_path / "b", **{"src/evaluator/bbh.py": reshaped}))
    no_list = "class HarmEvaluator:\n    def __init__(self):\n        self.refusal_string = load()\n"
    with pytest.raises(VoiceBenchSourceError, match=r"harm.py:\d+: no `self.refusal_string = \[...\]`"):
        read_tables(write_checkout(tmp_path / "c", **{"src/evaluator/harm.py": no_list}))
