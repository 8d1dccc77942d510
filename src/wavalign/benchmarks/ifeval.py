"""IFEval's instruction checks as VoiceBench's ifeval evaluator applies them (Google's instruction_following_eval).

Per row: `instruction_id_list` names the instructions, `kwargs` (one dict per instruction, None / falsy values dropped
as upstream does) their arguments. A reply is checked strictly and loosely (loosely: also with its first and/or last
line removed and/or '*' removed; any variant passing counts); an empty reply follows nothing. The suite's score is the
mean of four accuracies: strict and loose, per prompt (all instructions followed) and per instruction.

detectable_format:constrained_response checks the reply against IFEval's fixed answer options, which are read from the
user's VoiceBench checkout (`voicebench_source`, passed in as `constrained_options`), not shipped here.
The language checks use langdetect as upstream does (seeded here, so a run is repeatable; text it cannot classify
counts as followed, as upstream). The two checks that need nltk's punkt model (`UNSUPPORTED`) are refused when the
file is read, never scored approximately.
"""

from __future__ import annotations

import collections
import json
import re
from typing import Any, Callable, Mapping, Sequence

import langdetect

LESS, AT_LEAST = "less than", "at least"
CONSTRAINED = "detectable_format:constrained_response"  # its options come from the VoiceBench checkout
UNSUPPORTED = {
    "length_constraints:number_sentences": "needs nltk's punkt sentence splitter",
    "change_case:capital_word_frequency": "needs nltk's punkt word tokenizer",
}


class IfevalError(ValueError):
    pass


class UnsupportedInstruction(IfevalError):
    """An instruction the official checker scores with a tool we do not reproduce (`UNSUPPORTED`)."""


def _compare(count: float, relation: str, threshold: float) -> bool:
    if relation == LESS:
        return count < threshold
    if relation == AT_LEAST:
        return count >= threshold
    raise IfevalError(f"relation must be {LESS!r} or {AT_LEAST!r}, got {relation!r}")


def _keywords(v: str, a: Mapping[str, Any]) -> bool:
    return all(re.search(k, v, flags=re.IGNORECASE) for k in a["keywords"])  # upstream: keywords are regexes


def _frequency(v: str, a: Mapping[str, Any]) -> bool:
    return _compare(len(re.findall(a["keyword"].strip(), v, flags=re.IGNORECASE)), a["relation"], a["frequency"])


def _forbidden(v: str, a: Mapping[str, Any]) -> bool:
    return not any(re.search(r"\b" + w + r"\b", v, flags=re.IGNORECASE) for w in a["forbidden_words"])


def _letters(v: str, a: Mapping[str, Any]) -> bool:
    count = collections.Counter(v.lower())[a["letter"].strip().lower()]
    return count < a["let_frequency"] if a["let_relation"] == LESS else count >= a["let_frequency"]


def _words(v: str, a: Mapping[str, Any]) -> bool:
    return _compare(len(re.findall(r"\w+", v)), a["relation"], a["num_words"])


def _paragraphs(v: str, a: Mapping[str, Any]) -> bool:
    parts = re.split(r"\s?\*\*\*\s?", v)
    count = len(parts)
    for i, part in enumerate(parts):
        if not part.strip():
            if i in (0, len(parts) - 1):
                count -= 1
            else:
                return False
    return count == a["num_paragraphs"]


def _nth_first_word(v: str, a: Mapping[str, Any]) -> bool:
    parts = re.split(r"\n\n", v)
    count = sum(1 for p in parts if p.strip())
    nth = a["nth_paragraph"]
    if nth > count or not parts[nth - 1].strip():
        return False
    word = parts[nth - 1].strip().split()[0].strip().lstrip("'").lstrip('"')
    first = ""
    for ch in word:
        if ch in ".,?!'\"":
            break
        first += ch.lower()
    return count == a["num_paragraphs"] and first == a["first_word"].lower()


def _placeholders(v: str, a: Mapping[str, Any]) -> bool:
    return len(re.findall(r"\[.*?\]", v)) >= a["num_placeholders"]


def _postscript(v: str, a: Mapping[str, Any]) -> bool:
    marker = a["postscript_marker"].strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + marker.lower() + r".*$"
    return bool(re.findall(pattern, v.lower(), flags=re.MULTILINE))


def _bullets(v: str, a: Mapping[str, Any]) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", v, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", v, flags=re.MULTILINE)
    return len(stars) + len(dashes) == a["num_bullets"]


def _constrained(v: str, a: Mapping[str, Any]) -> bool:
    return any(option in v.strip() for option in a["options"])


def _highlights(v: str, a: Mapping[str, Any]) -> bool:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", v) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", v) if h[2:-2].strip()]
    return len(single) + len(double) >= a["num_highlights"]


def _sections(v: str, a: Mapping[str, Any]) -> bool:
    splitter = a["section_spliter"].strip()
    return len(re.split(r"\s?" + splitter + r"\s?\d+\s?", v)) - 1 >= a["num_sections"]


def _json(v: str, a: Mapping[str, Any]) -> bool:
    body = v.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        body = body.removeprefix(prefix)
    try:
        json.loads(body.removesuffix("```").strip())
    except ValueError:
        return False
    return True


def _title(v: str, a: Mapping[str, Any]) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", v))


def _two_responses(v: str, a: Mapping[str, Any]) -> bool:
    parts = v.split("******")
    kept = []
    for i, part in enumerate(parts):
        if part.strip():
            kept.append(part)
        elif i not in (0, len(parts) - 1):
            return False
    return len(kept) == 2 and kept[0].strip() != kept[1].strip()


def _repeat(v: str, a: Mapping[str, Any]) -> bool:
    return v.strip().lower().startswith(a["prompt_to_repeat"].strip().lower())


def _end(v: str, a: Mapping[str, Any]) -> bool:
    return v.strip().strip('"').lower().endswith(a["end_phrase"].strip().lower())


def _quotation(v: str, a: Mapping[str, Any]) -> bool:
    v = v.strip()
    return len(v) > 1 and v[0] == '"' and v[-1] == '"'


def _no_comma(v: str, a: Mapping[str, Any]) -> bool:
    return "," not in v


def _language_is(v: str, language: str) -> bool:
    langdetect.DetectorFactory.seed = 0
    try:
        return langdetect.detect(v) == language
    except langdetect.LangDetectException:  # nothing to classify: upstream counts it as followed
        return True


def _response_language(v: str, a: Mapping[str, Any]) -> bool:
    return _language_is(v, a["language"])


def _english_capital(v: str, a: Mapping[str, Any]) -> bool:
    return v.isupper() and _language_is(v, "en")


def _english_lowercase(v: str, a: Mapping[str, Any]) -> bool:
    return v.islower() and _language_is(v, "en")


# instruction id -> (check, required argument names)
CHECKS: dict[str, tuple[Callable[[str, Mapping[str, Any]], bool], tuple[str, ...]]] = {
    "keywords:existence": (_keywords, ("keywords",)),
    "keywords:frequency": (_frequency, ("keyword", "frequency", "relation")),
    "keywords:forbidden_words": (_forbidden, ("forbidden_words",)),
    "keywords:letter_frequency": (_letters, ("letter", "let_frequency", "let_relation")),
    "length_constraints:number_words": (_words, ("num_words", "relation")),
    "length_constraints:number_paragraphs": (_paragraphs, ("num_paragraphs",)),
    "length_constraints:nth_paragraph_first_word": (_nth_first_word, ("num_paragraphs", "nth_paragraph", "first_word")),
    "detectable_content:number_placeholders": (_placeholders, ("num_placeholders",)),
    "detectable_content:postscript": (_postscript, ("postscript_marker",)),
    "detectable_format:number_bullet_lists": (_bullets, ("num_bullets",)),
    "detectable_format:constrained_response": (_constrained, ()),
    "detectable_format:number_highlighted_sections": (_highlights, ("num_highlights",)),
    "detectable_format:multiple_sections": (_sections, ("section_spliter", "num_sections")),
    "detectable_format:json_format": (_json, ()),
    "detectable_format:title": (_title, ()),
    "combination:two_responses": (_two_responses, ()),
    "combination:repeat_prompt": (_repeat, ("prompt_to_repeat",)),
    "startend:end_checker": (_end, ("end_phrase",)),
    "startend:quotation": (_quotation, ()),
    "punctuation:no_comma": (_no_comma, ()),
    "language:response_language": (_response_language, ("language",)),
    "change_case:english_capital": (_english_capital, ()),
    "change_case:english_lowercase": (_english_lowercase, ()),
}


def instruction_args(ids: Any, kwargs: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """(instruction id, its arguments without falsy values) per instruction of a row; an id we do not check, or a
    missing argument, is an error naming the row."""
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise IfevalError(f"{where}: field 'instruction_id_list' must be a non-empty list of strings, got {ids!r}")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise IfevalError(f"{where}: field 'kwargs' must be a list of {len(ids)} objects, one per instruction")
    out = []
    for iid, raw in zip(ids, kwargs):
        if iid in UNSUPPORTED:
            raise UnsupportedInstruction(
                f"{where}: ifeval instruction {iid!r} is not checked here ({UNSUPPORTED[iid]} in the official "
                "evaluator); set the suite's skip_unsupported to drop such rows, or score them with VoiceBench's "
                "evaluate.py"
            )
        if iid not in CHECKS:
            raise IfevalError(f"{where}: unknown ifeval instruction id {iid!r}; known: {sorted(CHECKS)}")
        args = {k: v for k, v in raw.items() if v}
        missing = [k for k in CHECKS[iid][1] if k not in args]
        if missing:
            raise IfevalError(f"{where}: ifeval instruction {iid!r} needs kwargs {missing}")
        if iid.endswith("nth_paragraph_first_word") and not 0 < args["nth_paragraph"] <= args["num_paragraphs"]:
            # upstream replaces such an nth_paragraph by a random one: no fixed score to reproduce
            raise IfevalError(f"{where}: ifeval 'nth_paragraph' must lie in 1..num_paragraphs, got {args}")
        out.append((iid, args))
    return out


def _clean(response: str) -> str:
    if response[:3] in ("<1>", "<2>", "<3>"):
        response = response[3:].strip()
    if response.endswith("<|user|>"):
        response = response[: -len("<|user|>")].strip()
    return response


def _variants(response: str) -> list[str]:
    lines = response.split("\n")
    first, last, both = ("\n".join(ls).strip() for ls in (lines[1:], lines[:-1], lines[1:-1]))
    plain = [response, first, last, both]
    return plain[:1] + [response.replace("*", "")] + plain[1:] + [s.replace("*", "") for s in plain[1:]]


def needs_options(instructions: Sequence[tuple[str, dict[str, Any]]]) -> bool:
    """Whether checking these instructions needs the constrained-response options of a VoiceBench checkout."""
    return any(iid == CONSTRAINED for iid, _ in instructions)


def follows(
    response: str, instructions: Sequence[tuple[str, dict[str, Any]]], constrained_options: Sequence[str] | None = None
) -> tuple[list[bool], list[bool]]:
    """(strict, loose) verdict per instruction for one reply; constrained_options: IFEval's answer options (the
    checkout's `_CONSTRAINED_RESPONSE_OPTIONS`), needed only by detectable_format:constrained_response."""
    response = _clean(response)
    variants = _variants(response)
    strict, loose = [], []
    for iid, args in instructions:
        check = CHECKS[iid][0]
        if iid == CONSTRAINED:
            if not constrained_options:
                raise IfevalError(
                    f"{CONSTRAINED} needs IFEval's answer options from a VoiceBench checkout "
                    "(VoiceBenchRules.constrained_options)"
                )
            args = {**args, "options": tuple(constrained_options)}
        strict.append(bool(response.strip()) and check(response, args))
        loose.append(any(v.strip() and check(v, args) for v in variants))
    return strict, loose
