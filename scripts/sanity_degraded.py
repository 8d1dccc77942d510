"""The sanity table: EQ and WER of the world's demonstrations vs deliberately degraded copies (wavalign.world.sanity).

    python scripts/sanity_degraded.py [--world .cache/world] [--split val] [--n 50] [--out results/sanity.md]

Prepares nothing: run `python -m wavalign.world prepare --out DIR` (or any world config) first.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from wavalign.world.sanity import format_markdown, sanity_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default=".cache/world", help="a prepared world directory (with its extras)")
    parser.add_argument("--split", default="val", help="which split's demonstrations (train, val, test, heard)")
    parser.add_argument("--n", type=int, default=50, help="demonstrations to score")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/sanity.md", help="markdown table written here")
    args = parser.parse_args(argv)
    try:
        rows = sanity_table(args.world, args.split, args.n, args.seed, progress=lambda s: print(s, flush=True))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python scripts/sanity_degraded.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = f"{format_markdown(rows, args.split)}\n\n`{cmd.strip()}` on {args.world}, {stamp}\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
