"""Print the task-ASR WER of a world split before and after the built-in codec's round trip.

    python scripts/codec_roundtrip.py                      # .cache/world, test split, every utterance
    python scripts/codec_roundtrip.py --split val --limit 100
Exits 1 when the round trip loses more than --max-gap WER (issue 3's bar: 0.10).
"""

from __future__ import annotations

import argparse
import sys
import time

from wavalign.world.roundtrip import measure


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default=".cache/world", help="a prepared world directory")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--limit", type=int, default=None, help="first N distinct utterances only")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-gap", type=float, default=0.10)
    args = p.parse_args()
    t0 = time.perf_counter()
    r = measure(args.world, args.split, args.limit, args.workers)
    print(f"{args.split}: {r.utterances} utterances (questions + replies), {time.perf_counter() - t0:.1f} s")
    print(f"ASR WER on the original espeak-ng audio : {r.wer_original:.3f}")
    print(f"ASR WER after codec encode -> decode    : {r.wer_roundtrip:.3f}")
    print(f"gap                                     : {r.gap:+.3f} (bar: <= {args.max_gap:.2f})")
    return 0 if r.gap <= args.max_gap else 1


if __name__ == "__main__":
    sys.exit(main())
