"""Writes configs/data/debug_{train,val}.jsonl and debug_vocab.txt: a tiny plain-schema spoken-arithmetic set with
pre-tokenized speech (pseudo codec codes), so the debug config runs in seconds without audio or a codec.

    python scripts/make_debug_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

NUMBERS = "zero one two three four five six seven eight nine ten".split()
OUT = Path(__file__).resolve().parent.parent / "configs" / "data"
NUM_CODES = 64


def pseudo_speech(text: str, rng: random.Random) -> list[int]:
    """Stand-in codec codes: a few codes per word, deterministic per word, with a little noise."""
    codes = []
    for w in text.split():
        base = sum(map(ord, w)) % NUM_CODES
        codes += [(base + k + rng.choice((0, 0, 1))) % NUM_CODES for k in range(3)]
    return codes


def main() -> None:
    rng = random.Random(0)
    rows = []
    for a in range(6):
        for b in range(5):
            q = f"what is {NUMBERS[a]} plus {NUMBERS[b]}"
            ans = NUMBERS[a + b]
            reply = f"{NUMBERS[a]} plus {NUMBERS[b]} is {ans}"
            rows.append(
                {
                    "prompt": "<|audio|>",
                    "prompt_speech": [pseudo_speech(q, rng)],
                    "question_text": q,
                    "reply": reply,
                    "reply_speech": pseudo_speech(reply, rng),
                    "reference_answer": ans,
                }
            )
    rng.shuffle(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[:24]), ("val", rows[24:])):
        (OUT / f"debug_{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    vocab = sorted({w for r in rows for w in (r["question_text"] + " " + r["reply"]).split()})
    (OUT / "debug_vocab.txt").write_text("\n".join(vocab) + "\n")


if __name__ == "__main__":
    main()
