"""`wavalign listening build|serve|judge|report`: a blind pairwise listening test over `predict` folders.

wavalign listening build SESSION_DIR RUN_DIR RUN_DIR [...]   # trials, blinded audio, session.json
wavalign listening serve SESSION_DIR [--port 8000]           # the rating page on 127.0.0.1
wavalign listening judge SESSION_DIR --base_url URL --model M  # the same protocol, by an LLM judge
wavalign listening report SESSION_DIR                        # win / tie / loss: report.md and report.png
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from wavalign.judges.http import JudgeConfigError
from wavalign.listening.session import DEFAULT_CRITERIA, build_session

TOOLS = {
    "build": ("wavalign.listening.__main__", "a rating session from two or more predict folders"),
    "serve": ("wavalign.listening.server", "serve the rating page and record votes on 127.0.0.1"),
    "judge": ("wavalign.listening.pairwise_judge", "an HTTP judge votes on every trial, in both orders"),
    "report": ("wavalign.listening.report", "win / tie / loss rates, sign test and agreement as Markdown + PNG"),
}


def build_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="wavalign listening build", description="A blind pairwise rating session from `predict` folders."
    )
    parser.add_argument("session_dir", help="a new folder for session.json and the blinded audio")
    parser.add_argument(
        "run_dirs",
        nargs="+",
        help="two or more `wavalign predict` folders (same prompts); every pair is compared, 'win' = the earlier one preferred",
    )
    parser.add_argument("--criteria", default=",".join(DEFAULT_CRITERIA), help="comma-separated criteria to rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the side order and the trial ids")
    parser.add_argument("--reply_index", type=int, default=0, help="which of each prompt's replies is rated")
    parser.add_argument("--show_text", action="store_true", help="also show each reply's transcript")
    args = parser.parse_args(argv)
    session = build_session(
        args.session_dir, args.run_dirs, args.criteria.split(","), args.seed, args.reply_index, args.show_text
    )
    print(f"session: {session.root / 'session.json'} ({len(session.trials)} trials, {len(session.systems)} systems)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TOOLS:
        parser = argparse.ArgumentParser(prog="wavalign listening", description=__doc__.split("\n\n")[0])
        parser.add_argument("command", choices=list(TOOLS), help="; ".join(f"{k}: {h}" for k, (_, h) in TOOLS.items()))
        parser.parse_args(argv[:1])  # prints the usage and exits
        return 2
    try:
        if argv[0] == "build":
            return build_main(argv[1:])
        return int(importlib.import_module(TOOLS[argv[0]][0]).main(argv[1:]) or 0)
    except (ValueError, OSError, JudgeConfigError) as e:  # bad input: the message names the file, line or field
        print(f"wavalign listening {argv[0]}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
