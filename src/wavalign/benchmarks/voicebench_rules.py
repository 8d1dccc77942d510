"""VoiceBench's rule-based answer extraction (bbh, openbookqa / mmsu, advbench), as its evaluators apply it.

The engine is ours; the ordered rule tables it walks (bbh phrases per task, the multiple-choice templates and
phrases, the refusal strings) are VoiceBench's own, read at run time from the user's checkout of its repository
(`voicebench_source`: `voicebench_dir` or $WAVALIGN_VOICEBENCH_DIR), never shipped here. With upstream's tables a
score matches the published evaluator exactly, quirks included (e.g. a table may map a bare "b" to option (A), or hold
a run-together string a missing comma produced). Where upstream guesses a random answer (bbh, multiple choice: no
rule matched) the caller passes a seeded `random.Random`, so a run is repeatable, and counts the guesses.
"""

from __future__ import annotations

import os
import re
from typing import Any

from wavalign.benchmarks.voicebench_source import read_tables

BBH_TASKS = ("sports_understanding", "hyperbaton", "navigate", "web_of_lies")  # upstream's lookup order by id
BBH_REFERENCES = {"yes": 1, "no": 0, "(a)": 0, "(b)": 1}
MCQ_LETTERS = "abcd"
RULE_SUBSETS = ("bbh", "openbookqa", "mmsu", "advbench")  # the subsets scored by these tables


# ---- bbh ------------------------------------------------------------------------------------------------------------
def bbh_task(row_id: str) -> str | None:
    """The bbh task a row's id names (upstream tests substrings in this order), or None: upstream has no rules."""
    return next((task for task in BBH_TASKS if task in row_id), None)


def bbh_reference(reference: str) -> int | None:
    """yes / (b) -> 1, no / (a) -> 0 (case-insensitive), None for anything else."""
    return BBH_REFERENCES.get(reference.lower())


def bbh_normalize(response: str) -> str:
    """Lowercase, strip the chat markers some models leave, turn : ** " - , . and the full-width colon into spaces,
    squeeze whitespace (upstream's normalize)."""
    text = response.lower()
    if text.endswith("<|user|>"):
        text = text[: -len("<|user|>")].strip()
    if text[:3] in ("<1>", "<2>", "<3>"):
        text = text[3:].strip()
    text = text.replace("<|turn_end|>", "")
    for mark in (":", "**", '"', "-", ",", ".", "\uff1a"):
        text = text.replace(mark, " ")
    return " ".join(text.split())


def _matches(test: str, pattern: str, text: str) -> bool:
    if test == "in":
        return pattern in text
    if test == "eq":
        return text == pattern
    if test == "re":
        return re.search(pattern, text) is not None
    if test == "start":
        return text.startswith(pattern)
    if test == "end":
        return text.endswith(pattern)
    raise ValueError(f"unknown rule test {test!r}")


def _first_rule(table: dict[str, Any], text: str) -> int | None:
    for test, pattern, answer in table["rules"]:
        if _matches(test, pattern, text):
            return int(answer)
    return None


class VoiceBenchRules:
    """The rule tables of one VoiceBench checkout (`voicebench_source.read_tables`) and the extraction over them."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self.tables = tables

    @property
    def constrained_options(self) -> list[str]:
        """IFEval's answer options for detectable_format:constrained_response (VoiceBench's ifeval subset)."""
        return self.tables["constrained_options"]

    @classmethod
    def from_checkout(
        cls, voicebench_dir: str | os.PathLike[str] | None, needed_for: str = "VoiceBench scoring"
    ) -> "VoiceBenchRules":
        return cls(read_tables(voicebench_dir, needed_for))

    def bbh_answer(self, response: str, task: str) -> int | None:
        """The 0/1 answer upstream reads from a reply for a bbh task, or None where upstream would guess at random.
        The tasks whose upstream method consults the shared yes/no chain first (all but hyperbaton) try it first."""
        table = self.tables["bbh"]
        if task not in table or task == "yes_no":
            raise ValueError(f"no bbh rules for task {task!r}; known: {list(BBH_TASKS)}")
        text = bbh_normalize(response)
        if table[task]["yes_no_first"]:
            found = _first_rule(table["yes_no"], text)
            if found is not None:
                return found
        return _first_rule(table[task], text)

    def mcq_answer(self, response: str) -> str | None:
        """The letter A-D upstream reads from a reply, or None (upstream then guesses a letter at random).

        Every template is tried with a, b, c, d before the next template; then the bare letter, a letter followed by
        . , : or ) at the start; then upstream's trailing phrases."""
        text = response.lower()
        if text[:3] in ("<1>", "<2>", "<3>"):
            text = text[3:].strip()
        for template in self.tables["mcq_templates"]:
            for letter in MCQ_LETTERS:
                if template.replace("[CHOICE]", letter) in text:
                    return letter.upper()
        for letter in MCQ_LETTERS:
            if text == letter or any(text.startswith(letter + p) for p in ".,:)"):
                return letter.upper()
        for test, pattern, answer in self.tables["mcq_specials"]:
            if _matches(test, pattern, text):
                return str(answer)
        return None

    def refused(self, response: str) -> bool:
        """Upstream's refusal test: an empty reply, or one holding any refusal string (case-insensitive)."""
        if not response.strip():
            return True
        text = response.lower()
        return any(s.lower() in text for s in self.tables["refusal_strings"])
