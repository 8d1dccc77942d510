"""Checks that our VoiceBench rule engine answers exactly as upstream's evaluators do, on random replies.

    python scripts/check_voicebench_rules.py /path/to/VoiceBench [--replies 20000] [--seed 0]

(or set WAVALIGN_VOICEBENCH_DIR). A maintainer's check, not a unit test: it needs a real checkout of
github.com/MatthewCYM/VoiceBench and numpy. Upstream's src/evaluator/{bbh,mcq,harm}.py are imported from the checkout
(their package __init__, which pulls in the IFEval dependencies, is bypassed); our tables are read from the same
checkout by `wavalign.benchmarks.voicebench_source`. Every phrase of every table is first tried alone, then replies
are built at random from the tables' own phrases (with the letters, regex groups, case, punctuation, chat markers and
filler words varied), so most of them hit some rule and many hit several; each is answered by both sides:
- bbh: BBHEvaluator.extract_answer(reply, "<task>_0") vs our bbh_answer (upstream's random guess is intercepted and
  compared with our None);
- multiple choice: MCQEvaluator.extract_answer vs our mcq_answer;
- refusal: HarmEvaluator.evaluate_single vs our refused.
Prints the counts and the first disagreements; exits 1 on any disagreement. Nothing of upstream's text is held here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import random
import sys
import types
from pathlib import Path

from wavalign.benchmarks.voicebench_rules import BBH_TASKS, VoiceBenchRules
from wavalign.benchmarks.voicebench_source import read_tables, resolve_dir

FILLER = [
    "well",
    "so",
    "i think",
    "okay",
    "the",
    "sentence",
    "option",
    "answer",
    "maybe",
    "is",
    "not",
    "yes",
    "no",
    "a",
    "b",
    "c",
    "d",
    "(a)",
    "(b)",
    "truth",
    "plausible",
    "sorry",
    "sure",
    "here",
    "is how",
    "steps",
]
MARKS = ["", ".", ",", ":", "**", '"', "-", ")", "!", "?", "\uff1a", "\n", " ", "'"]
PREFIXES = ["", "", "", "<1>", "<2>", "<3>", " "]
SUFFIXES = ["", "", "", "<|user|>", "<|turn_end|>", "\n"]


class _Guess:
    """Stands in for upstream's `random` module inside bbh.py: a guess comes back as GUESS, not as 0 or 1."""

    @staticmethod
    def choice(seq):  # noqa: ANN001, ANN205 - upstream's call shape
        return "GUESS"


def load_upstream(root: Path) -> dict[str, types.ModuleType]:
    """src/evaluator/{base,bbh,mcq,harm}.py as modules of a synthetic package (its __init__ is not run)."""
    package = types.ModuleType("_voicebench_evaluator")
    package.__path__ = [str(root / "src" / "evaluator")]  # type: ignore[attr-defined]
    sys.modules[package.__name__] = package
    return {name: importlib.import_module(f"{package.__name__}.{name}") for name in ("base", "bbh", "mcq", "harm")}


def _vary(text: str, rng: random.Random) -> str:
    text = text.replace("(.+?)", " ".join(rng.sample(FILLER, rng.randint(1, 3))))
    text = text.replace("[CHOICE]", rng.choice("abcdABCD"))
    if rng.random() < 0.3:
        text = text.upper() if rng.random() < 0.5 else text.capitalize()
    if rng.random() < 0.3:  # punctuation that normalisation may remove
        words = text.split(" ")
        i = rng.randrange(len(words))
        words[i] = words[i] + rng.choice(MARKS)
        text = " ".join(words)
    return text


def random_reply(phrases: list[str], rng: random.Random) -> str:
    """A reply of 0-3 table phrases and filler words, with markers, punctuation and case varied."""
    parts = [rng.choice(FILLER) for _ in range(rng.randint(0, 4))]
    for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):
        parts.insert(rng.randint(0, len(parts)), _vary(rng.choice(phrases), rng))
    if rng.random() < 0.1:
        parts = [rng.choice("abcdABCD") + rng.choice(MARKS)]
    joiner = rng.choice([" ", " ", ", ", ". ", "\n"])
    return rng.choice(PREFIXES) + joiner.join(parts) + rng.choice(MARKS) + rng.choice(SUFFIXES)


def compare(root: Path, replies: int, seed: int) -> int:
    tables, ours, up = read_tables(root), VoiceBenchRules.from_checkout(root), load_upstream(root)
    up["bbh"].random = _Guess  # type: ignore[attr-defined]
    bbh, mcq, harm = up["bbh"].BBHEvaluator(), up["mcq"].MCQEvaluator(), up["harm"].HarmEvaluator()
    rng = random.Random(seed)
    bbh_phrases = [r[1] for t in tables["bbh"].values() for r in t["rules"]]
    mcq_phrases = tables["mcq_templates"] + [r[1] for r in tables["mcq_specials"]]
    refusals = tables["refusal_strings"]
    counts = {"bbh": [0, 0, 0], "mcq": [0, 0, 0], "refusal": [0, 0, 0]}  # checked, answered by a rule, disagreed
    disagreements: list[str] = []

    def record(kind: str, reply: str, theirs, mine, answered: bool) -> None:  # noqa: ANN001
        c = counts[kind]
        c[0] += 1
        c[1] += answered
        if theirs != mine:
            c[2] += 1
            disagreements.append(f"DISAGREE {kind}: {reply!r}: upstream {theirs!r}, ours {mine!r}")

    # first every phrase of every table alone (varied), then random mixtures
    sweep_bbh = [
        (task, _vary(p, rng))
        for task in BBH_TASKS
        for name in (task, "yes_no")
        for p in (r[1] for r in tables["bbh"][name]["rules"])
    ]
    sweep_mcq = [_vary(p, rng) for p in mcq_phrases for _ in range(4)]
    sweep_refusal = [_vary(p, rng) for p in refusals]
    with contextlib.redirect_stdout(io.StringIO()):  # upstream prints every unmatched bbh reply
        for i in range(max(replies, len(sweep_bbh), len(sweep_mcq), len(sweep_refusal))):
            if i < len(sweep_bbh):
                task, reply = sweep_bbh[i]
            else:
                task = rng.choice(BBH_TASKS)
                own = [r[1] for name in (task, "yes_no") for r in tables["bbh"][name]["rules"]]
                reply = random_reply(own if rng.random() < 0.7 else bbh_phrases, rng)
            theirs = bbh.extract_answer(reply, f"{task}_0")
            mine = ours.bbh_answer(reply, task)
            record("bbh", reply, None if theirs == "GUESS" else theirs, mine, mine is not None)
            reply = sweep_mcq[i] if i < len(sweep_mcq) else random_reply(mcq_phrases, rng)
            mine_letter = ours.mcq_answer(reply)
            record("mcq", reply, mcq.extract_answer(reply), mine_letter, mine_letter is not None)
            if i < len(sweep_refusal):
                reply = sweep_refusal[i]
            else:
                reply = random_reply(refusals + FILLER, rng) if rng.random() < 0.9 else rng.choice(["", " ", "\n"])
            mine_refused = ours.refused(reply)
            record("refusal", reply, bool(harm.evaluate_single(reply)), mine_refused, mine_refused)
    for line in disagreements[:10]:
        print(line)
    for kind, (n, hit, bad) in counts.items():
        print(f"{kind:8s} {n} replies, {hit} answered by a rule ({100 * hit / n:.1f}%), {bad} disagreements")
    return 1 if any(c[2] for c in counts.values()) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("voicebench_dir", nargs="?", default=None, help="a VoiceBench checkout (else the env var)")
    parser.add_argument("--replies", type=int, default=20000, help="random replies per rule family")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return compare(resolve_dir(args.voicebench_dir, "scripts/check_voicebench_rules.py"), args.replies, args.seed)


if __name__ == "__main__":
    sys.exit(main())
