"""The embedded world's task: spoken question answering over a closed vocabulary, with a requested speaking style.

Why this shape: every question has exactly one right answer (so a rule judge can score content), every reply is a
full sentence that ENDS with that answer (so "the reply ends with the answer" is a valid check), numbers
are words from zero to twenty (so the ASR task LM and a word-level tokenizer stay small), and each example asks for
a speaking style (so expressiveness is something the model can get right or wrong, measurably from audio).

The style request is a text instruction in a system message, ``"style: cheerful"``; the user turn is the spoken
question (``"<|audio|>"``). The question audio is always neutral; the demonstration reply is spoken in the style.

Splits are by question (never by example): a test question is never seen in training, in any style. Only the
SKILL_FAMILIES are held out: their unseen questions are new combinations of words heard in training, answerable by a
skill (copying, comparing, adding). A held-out fact question ("what color is a banana") would be unanswerable by
construction (its words and its fact occur nowhere in training), so fact families are training-only knowledge.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

WORLD_STYLES: tuple[str, ...] = ("neutral", "cheerful", "calm")  # fixed here so new TTS styles don't shift the world
SPLITS: tuple[str, ...] = ("train", "val", "test")
NUMBERS: tuple[str, ...] = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
).split()
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
MONTHS = "january february march april may june july august september october november december".split()
COLORS: tuple[tuple[str, str], ...] = (
    ("the sky", "blue"),
    ("the sea", "blue"),
    ("grass", "green"),
    ("a leaf", "green"),
    ("a frog", "green"),
    ("a lime", "green"),
    ("snow", "white"),
    ("milk", "white"),
    ("salt", "white"),
    ("a cloud", "white"),
    ("coal", "black"),
    ("a crow", "black"),
    ("ink", "black"),
    ("a banana", "yellow"),
    ("a lemon", "yellow"),
    ("the sun", "yellow"),
    ("a tomato", "red"),
    ("a strawberry", "red"),
    ("a cherry", "red"),
    ("blood", "red"),
    ("a carrot", "orange"),
    ("a pumpkin", "orange"),
    ("an orange", "orange"),
    ("chocolate", "brown"),
    ("soil", "brown"),
    ("a plum", "purple"),
    ("an eggplant", "purple"),
    ("a flamingo", "pink"),
    ("a pig", "pink"),
    ("an elephant", "gray"),
)
OPPOSITES: tuple[tuple[str, str], ...] = (
    ("hot", "cold"),
    ("big", "small"),
    ("up", "down"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("day", "night"),
    ("open", "closed"),
    ("light", "dark"),
    ("tall", "short"),
    ("wet", "dry"),
    ("loud", "quiet"),
    ("hard", "soft"),
    ("full", "empty"),
    ("early", "late"),
    ("left", "right"),
    ("in", "out"),
    ("yes", "no"),
    ("push", "pull"),
    ("win", "lose"),
    ("true", "false"),
    ("first", "last"),
    ("rich", "poor"),
    ("strong", "weak"),
    ("thick", "thin"),
    ("black", "white"),
)
LEGS: tuple[tuple[str, int], ...] = (
    ("a dog", 4),
    ("a cat", 4),
    ("a horse", 4),
    ("a cow", 4),
    ("a lion", 4),
    ("a sheep", 4),
    ("a bird", 2),
    ("a duck", 2),
    ("a chicken", 2),
    ("an ant", 6),
    ("a bee", 6),
    ("a spider", 8),
    ("an octopus", 8),
    ("a crab", 10),
    ("a fish", 0),
    ("a snake", 0),
    ("a worm", 0),
)
SOUNDS: tuple[tuple[str, str], ...] = (
    ("a cow", "moo"),
    ("a dog", "woof"),
    ("a duck", "quack"),
    ("a cat", "meow"),
    ("a sheep", "baa"),
    ("a horse", "neigh"),
    ("an owl", "hoot"),
    ("a snake", "hiss"),
    ("a bee", "buzz"),
    ("a lion", "roar"),
    ("a mouse", "squeak"),
    ("a wolf", "howl"),
    ("a frog", "croak"),
    ("a bird", "tweet"),
    ("a hen", "cluck"),
)
FAMILIES: tuple[str, ...] = (
    "arithmetic",
    "comparison",
    "repeat",
    "counting",
    "days",
    "months",
    "colors",
    "opposites",
    "legs",
    "sounds",
)
SKILL_FAMILIES: tuple[str, ...] = ("arithmetic", "comparison", "repeat")  # held out in val/test; the rest train only
N_REPEAT = 300  # "repeat after me" questions: random number triples

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """The world's word split (lowercase letters, digits, apostrophes); punctuation such as ':' is dropped."""
    return _WORD.findall(text.lower())


def system_prompt(style: str) -> str:
    """The system message that requests a speaking style."""
    if style not in WORLD_STYLES:
        raise ValueError(f"unknown world style {style!r}; known: {list(WORLD_STYLES)}")
    return f"style: {style}"


@dataclass(frozen=True)
class Question:
    qid: int  # index in all_questions(): stable across seeds, used to name audio files
    family: str
    text: str
    reply: str  # demonstration reply; its last word is `answer`
    answer: str


@dataclass(frozen=True)
class Example:
    qid: int
    family: str
    question_text: str
    reply_text: str
    reference_answer: str
    style: str
    answer_wrong: bool = False  # an imperfect teacher's demonstration: reply_text ends with a wrong answer
    demo_style: str | None = None  # the style the demonstration is spoken in, when the teacher got it wrong

    @property
    def system_prompt(self) -> str:
        return system_prompt(self.style)

    @property
    def spoken_style(self) -> str:
        """The style the demonstration audio is actually spoken in."""
        return self.demo_style or self.style


def _generate() -> list[tuple[str, str, str, str]]:
    """(family, question, reply, answer) for every question of the world, in a fixed order."""
    out: list[tuple[str, str, str, str]] = []
    n = NUMBERS
    for a in range(21):
        for b in range(21 - a):
            out.append(("arithmetic", f"what is {n[a]} plus {n[b]}", f"{n[a]} plus {n[b]} is {n[a + b]}", n[a + b]))
    for a in range(21):
        for b in range(a + 1):
            out.append(("arithmetic", f"what is {n[a]} minus {n[b]}", f"{n[a]} minus {n[b]} is {n[a - b]}", n[a - b]))
    for a in range(21):
        for b in range(a + 1, 21):
            x, y = (a, b) if (a + b) % 2 == 0 else (b, a)  # one spoken order per pair, both orders overall
            for word, pick in (("bigger", b), ("smaller", a)):
                out.append(
                    (
                        "comparison",
                        f"which is {word} {n[x]} or {n[y]}",
                        f"the {word} of {n[x]} and {n[y]} is {n[pick]}",
                        n[pick],
                    )
                )
    rng = random.Random("wavalign-world-repeat")
    triples: dict[tuple[int, int, int], None] = {}
    while len(triples) < N_REPEAT:
        triples[(rng.randrange(21), rng.randrange(21), rng.randrange(21))] = None
    for t in triples:
        said = " ".join(n[i] for i in t)
        out.append(("repeat", f"repeat after me {said}", f"you said {said}", said))
    for i in range(20):
        a, b = n[i], n[i + 1]
        out.append(("counting", f"what number comes after {a}", f"the number after {a} is {b}", b))
        out.append(("counting", f"what number comes before {b}", f"the number before {b} is {a}", a))
    for family, seq in (("days", DAYS), ("months", MONTHS)):  # weeks and years wrap around
        unit = family[:-1]
        for i, cur in enumerate(seq):
            nxt, prv = seq[(i + 1) % len(seq)], seq[i - 1]
            out.append((family, f"what {unit} comes after {cur}", f"the {unit} after {cur} is {nxt}", nxt))
            out.append((family, f"what {unit} comes before {cur}", f"the {unit} before {cur} is {prv}", prv))
    for thing, color in COLORS:
        out.append(("colors", f"what color is {thing}", f"{thing} is {color}", color))
    for x, y in OPPOSITES:
        out.append(("opposites", f"what is the opposite of {x}", f"the opposite of {x} is {y}", y))
        out.append(("opposites", f"what is the opposite of {y}", f"the opposite of {y} is {x}", x))
    for animal, legs in LEGS:
        out.append(
            ("legs", f"how many legs does {animal} have", f"the number of legs on {animal} is {n[legs]}", n[legs])
        )
    for animal, sound in SOUNDS:
        out.append(("sounds", f"what sound does {animal} make", f"the sound {animal} makes is {sound}", sound))
    return out


@lru_cache(maxsize=1)
def all_questions() -> tuple[Question, ...]:
    """Every question of the world, in a fixed order (qid = position)."""
    qs = tuple(Question(i, *row) for i, row in enumerate(_generate()))
    texts = [q.text for q in qs]
    assert len(set(texts)) == len(texts), "duplicate question text in the world tables"
    return qs


def split_questions(seed: int = 0, val_frac: float = 0.1, test_frac: float = 0.1) -> dict[str, list[Question]]:
    """Disjoint train/val/test question sets: each skill family's questions are shuffled and split by fraction (so
    val and test hold every skill family); fact families go to train whole."""
    if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise ValueError(f"val_frac={val_frac}, test_frac={test_frac}: need each in (0, 1) and their sum below 1")
    rng = random.Random(f"wavalign-world-split-{seed}")
    out: dict[str, list[Question]] = {s: [] for s in SPLITS}
    for family in FAMILIES:
        qs = [q for q in all_questions() if q.family == family]
        rng.shuffle(qs)
        if family not in SKILL_FAMILIES:
            out["train"] += qs
            continue
        n_val, n_test = max(1, round(val_frac * len(qs))), max(1, round(test_frac * len(qs)))
        out["val"] += qs[:n_val]
        out["test"] += qs[n_val : n_val + n_test]
        out["train"] += qs[n_val + n_test :]
    return out


def _style_passes(qs: list[Question], rng: random.Random) -> list[Example]:
    """Every (question, style) pair, ordered so each question appears once before any appears twice."""
    order = list(qs)
    rng.shuffle(order)
    offsets = [rng.randrange(len(WORLD_STYLES)) for _ in order]
    return [
        Example(q.qid, q.family, q.text, q.reply, q.answer, WORLD_STYLES[(off + k) % len(WORLD_STYLES)])
        for k in range(len(WORLD_STYLES))
        for q, off in zip(order, offsets)
    ]


def make_examples(questions: list[Question], n: int, rng: random.Random) -> list[Example]:
    """n distinct (question, style) examples, balanced across families (round-robin until a family runs out)."""
    by_family = [_style_passes([q for q in questions if q.family == f], rng) for f in FAMILIES]
    available = sum(len(b) for b in by_family)
    if not 0 <= n <= available:
        raise ValueError(f"asked for {n} examples but these questions give only {available} (question, style) pairs")
    picked: list[Example] = []
    depth = 0
    while len(picked) < n:
        for pool in by_family:
            if depth < len(pool) and len(picked) < n:
                picked.append(pool[depth])
        depth += 1
    rng.shuffle(picked)
    return picked


class SplitTooSmall(ValueError):
    """A split's questions cannot give the examples asked for; `split` names it (so callers can name the setting)."""

    def __init__(self, split: str, message: str) -> None:
        super().__init__(f"the {split} split: {message}")
        self.split = split


def make_splits(seed: int = 0, n_train: int = 1500, n_val: int = 150, n_test: int = 150) -> dict[str, list[Example]]:
    """The world's examples per split, deterministic from `seed`; questions are disjoint across splits."""
    questions = split_questions(seed)
    counts = {"train": n_train, "val": n_val, "test": n_test}
    out = {}
    for s in SPLITS:
        try:
            out[s] = make_examples(questions[s], counts[s], random.Random(f"wavalign-world-{s}-{seed}"))
        except ValueError as e:
            raise SplitTooSmall(s, str(e)) from None
    return out


def sentences() -> list[str]:
    """Every question and reply sentence (sorted, unique): the corpus for the ASR judge's task language model."""
    return sorted({q.text for q in all_questions()} | {q.reply for q in all_questions()})


def vocabulary() -> list[str]:
    """Sorted list of every word in any question, reply or style prompt (split with `words`): a word tokenizer's
    vocabulary."""
    vocab = {w for s in sentences() for w in words(s)}
    vocab |= {w for style in WORLD_STYLES for w in words(system_prompt(style))}
    return sorted(vocab)
