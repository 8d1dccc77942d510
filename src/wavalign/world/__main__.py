"""`python -m wavalign.world prepare --out DIR [--seed 0] [--train N --val N --test N] [--num-codes 256] ...`"""

from __future__ import annotations

import argparse
import sys

from wavalign.world.extras import write_world_extras
from wavalign.world.prepare import DEFAULT_COUNTS, DEFAULT_MAX_FIT_UTTERANCES, prepare_world
from wavalign.world.tasks import all_questions, split_questions, vocabulary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wavalign.world", description="The embedded spoken-dialogue world.")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="synthesise audio, write JSONL splits and fit the codec codebook (cached)")
    prep.add_argument("--out", required=True, help="output directory")
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--train", type=int, default=DEFAULT_COUNTS["train"], help="training examples")
    prep.add_argument("--val", type=int, default=DEFAULT_COUNTS["val"], help="validation examples")
    prep.add_argument("--test", type=int, default=DEFAULT_COUNTS["test"], help="test examples")
    prep.add_argument("--num-codes", type=int, default=256, help="codec codebook size")
    prep.add_argument("--frame-ms", type=float, default=40.0, help="codec frame length (one token per frame)")
    prep.add_argument("--max-fit-utterances", type=int, default=DEFAULT_MAX_FIT_UTTERANCES,
                      help="training utterances to fit the codebook on (a seeded subset if more)")  # fmt: skip
    prep.add_argument("--workers", type=int, default=2, help="parallel espeak-ng syntheses")
    prep.add_argument("--no-extras", action="store_true",
                      help="skip what training needs beside audio and JSONL (vocab, ASR sentences, speech codes, "
                           "style profiles, benchmark files)")  # fmt: skip
    sub.add_parser("info", help="print the question counts per split and the vocabulary size")
    args = parser.parse_args(argv)

    if args.command == "info":
        splits = split_questions()
        print(f"questions: {len(all_questions())} ({', '.join(f'{s} {len(q)}' for s, q in splits.items())}, seed 0)")
        print(f"vocabulary: {len(vocabulary())} words")
        return 0
    try:
        root = prepare_world(args.out, seed=args.seed, n_train=args.train, n_val=args.val, n_test=args.test,
                             num_codes=args.num_codes, frame_ms=args.frame_ms,
                             max_fit_utterances=args.max_fit_utterances, workers=args.workers)  # fmt: skip
        if not args.no_extras:
            write_world_extras(root)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
