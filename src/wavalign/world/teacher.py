"""World knobs that give a reward something to teach: an imperfect teacher, and new recordings of known questions.

Real post-training data comes from an imperfect teacher (a text LLM plus a TTS): some demonstrations answer wrongly,
some are spoken in the wrong (often flat) style. With perfect demonstrations SFT alone already points at the right
reply, so a reward knows nothing the demonstrations do not; with a share of wrong ones, a judge that checks the
answer (or the style) rewards exactly what the teacher got wrong. Both shares default to 0 (today's world).

- `wrong_answer`: the share of TRAINING QUESTIONS whose demonstrations end with a wrong answer, the same wrong answer
  in every style (a teacher is consistently wrong about a question; random per-example noise would average out).
  The row's `reference_answer` stays right: the judge knows the truth, the teacher does not.
- `wrong_style`: the share of TRAINING EXAMPLES whose demonstration audio is spoken in another world style than the
  one requested (the judge's style profiles are fitted on what was actually spoken, so they stay right).

The "heard" split (`heard_examples`): training questions asked again in other espeak-ng voices and speaking rates,
with the right reply. IQ there measures "answers a question it was trained on, from a new recording" (listening and
recall), separately from the validation split's "generalises a skill to an unseen question".
"""

from __future__ import annotations

import dataclasses
import random

from wavalign.audio.tts import SpeakingStyle
from wavalign.world.tasks import NUMBERS, WORLD_STYLES, Example, Question, all_questions, make_examples, words

# (espeak-ng voice, base pitch, words per minute) of the heard split's question recordings, assigned round-robin.
# The training questions are spoken by en-us at pitch 50, 175 wpm. These are the training voice at a small rate or
# pitch change, chosen by `python -m wavalign.world probe-heard` on the ablation's warm start by a rule fixed before
# the probe (docs/ablation.md): other voices (en-us+m3, en-gb) and larger changes were not understood at all, so the
# split measured voice robustness instead of "answers a question it was taught, from a new recording".
HEARD_VOICES: tuple[tuple[str, int, int], ...] = (
    ("en-us", 50, 166),  # rate -5 %
    ("en-us", 50, 184),  # rate +5 %
    ("en-us", 45, 175),  # pitch -5
    ("en-us", 55, 175),  # pitch +5
)


def heard_voice(index: int) -> tuple[str, SpeakingStyle]:
    """(espeak-ng voice, prosody) of the heard split's `index`-th question recording."""
    voice, pitch, speed = HEARD_VOICES[index % len(HEARD_VOICES)]
    return voice, SpeakingStyle(f"heard{index % len(HEARD_VOICES)}", pitch=pitch, pitch_range=50, speed=speed)


def _check_share(name: str, share: float) -> float:
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"world teacher {name} must be a share in [0, 1], got {share}")
    return float(share)


def wrong_answer(question: Question, rng: random.Random) -> str:
    """A wrong answer of the question's own kind: another answer of its family (another number, colour, day ...);
    for "repeat after me" the same three numbers with one of them changed."""
    if question.family == "repeat":
        said = words(question.answer)
        i = rng.randrange(len(said))
        said[i] = rng.choice([n for n in NUMBERS if n != said[i]])
        return " ".join(said)
    pool = sorted({q.answer for q in all_questions() if q.family == question.family} - {question.answer})
    return rng.choice(pool)


def _with_answer(reply: str, right: str, wrong: str) -> str:
    """The demonstration reply with its final answer words replaced ("three plus four is nine")."""
    head = words(reply)[: -len(words(right))]
    return " ".join([*head, *words(wrong)])


def imperfect_teacher(
    train: list[Example], wrong_answer_share: float, wrong_style_share: float, seed: int
) -> list[Example]:
    """The training examples as an imperfect teacher demonstrates them (same order, same questions and styles)."""
    a, s = _check_share("wrong_answer", wrong_answer_share), _check_share("wrong_style", wrong_style_share)
    if a == 0.0 and s == 0.0:
        return list(train)
    rng = random.Random(f"wavalign-world-teacher-{seed}")
    by_qid = {q.qid: q for q in all_questions()}
    qids = sorted({e.qid for e in train})
    wrong_qids = set(rng.sample(qids, round(a * len(qids))))
    wrong = {qid: wrong_answer(by_qid[qid], rng) for qid in sorted(wrong_qids)}
    restyled = set(rng.sample(range(len(train)), round(s * len(train))))
    out = []
    for i, ex in enumerate(train):
        if ex.qid in wrong:
            ex = dataclasses.replace(
                ex, reply_text=_with_answer(ex.reply_text, ex.reference_answer, wrong[ex.qid]), answer_wrong=True
            )
        if i in restyled:
            others = [st for st in WORLD_STYLES if st != ex.style]
            ex = dataclasses.replace(ex, demo_style=others[rng.randrange(len(others))])
        out.append(ex)
    return out


def heard_examples(train_questions: list[Question], n: int, seed: int) -> list[Example]:
    """n (training question, style) examples with the right reply, balanced across families, for the heard split."""
    return make_examples(train_questions, n, random.Random(f"wavalign-world-heard-{seed}"))
