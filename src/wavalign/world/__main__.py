"""`python -m wavalign.world prepare [--dir DIR] [--seed 0] [--n-train N --n-val N --n-test N] ...` (the options are the
fields of wavalign.world.settings.WorldSettings; --out, --train, --val, --test and --heard are their older names)."""

from __future__ import annotations

import argparse
import sys

from wavalign.world.extras import write_world_extras
from wavalign.world.loader import Loaded, load, run_as_wavalign
from wavalign.world.prepare import prepare_world
from wavalign.world.settings import add_options, from_options
from wavalign.world.tasks import all_questions, split_questions, vocabulary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wavalign.world", description="The embedded spoken-dialogue world.")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="synthesise audio, write JSONL splits and fit the codec codebook (cached)")
    add_options(prep)  # one option per WorldSettings field, help from its docstring
    prep.add_argument(
        "--no-extras",
        action="store_true",
        help="skip what training needs beside audio and JSONL (vocab, ASR sentences, speech codes, "
        "style profiles, benchmark files)",
    )
    sub.add_parser("info", help="print the question counts per split and the vocabulary size")
    diag = sub.add_parser(
        "diagnose",
        help="per family: accuracy, restatement rate, comparison answer kinds of a "
        "checkpoint's sampled replies (further --key=value arguments go to the training config)",
    )
    _checkpoint_options(diag)
    diag.add_argument(
        "--split",
        default="val",
        choices=("train", "val", "test", "heard"),
        help="heard: training questions in new recordings (a world prepared with n_heard > 0)",
    )
    diag.add_argument("--samples", type=int, default=4, help="sampled replies per item")
    diag.add_argument("--temperature", type=float, default=None, help="default: the config's eval_sampling")
    probe = sub.add_parser(
        "probe-heard",
        help="a checkpoint's accuracy on training questions recorded in candidate "
        "voices, rates and pitches (how the heard split's voices were chosen)",
    )
    _checkpoint_options(probe)
    probe.add_argument("--n", type=int, default=60, help="training questions per candidate recording")
    probe.add_argument("--samples", type=int, default=2, help="sampled replies per item")
    probe.add_argument("--out", default=None, help="where the candidate recordings go (default <world>/heard_probe)")
    cal = sub.add_parser(
        "calibrate",
        help="per-prompt success histogram of a checkpoint on the training prompts, and the share of groups with "
        "equal rewards (docs/testbed.md; further --key=value arguments go to the training config)",
    )
    _checkpoint_options(cal)
    cal.add_argument("--n", type=int, default=200, help="training prompts (the first N of the training file)")
    cal.add_argument("--samples", type=int, default=8, help="replies per prompt (training sampling)")
    cal.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args, overrides = parser.parse_known_args(argv)
    if overrides and args.command not in ("diagnose", "probe-heard", "calibrate"):
        parser.error(f"unrecognized arguments: {' '.join(overrides)}")

    if args.command == "calibrate":
        return _calibrate(args, overrides)
    if args.command in ("diagnose", "probe-heard"):
        if args.samples < 1:
            parser.error(f"--samples must be at least 1, got {args.samples}")
        return _diagnose(args, overrides) if args.command == "diagnose" else _probe_heard(args, overrides)

    if args.command == "info":
        splits = split_questions()
        print(f"questions: {len(all_questions())} ({', '.join(f'{s} {len(q)}' for s, q in splits.items())}, seed 0)")
        print(f"vocabulary: {len(vocabulary())} words")
        return 0
    try:
        root = prepare_world(from_options(args))
        if not args.no_extras:
            write_world_extras(root)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _checkpoint_options(sub: argparse.ArgumentParser) -> None:
    """--checkpoint and --config, for the commands that read a trained policy."""
    sub.add_argument("--checkpoint", required=True, help="a checkpoint of the config's policy (e.g. last.ckpt)")
    sub.add_argument("--config", default="configs/tiny.yaml", help="the training config that built the checkpoint")


def _load(args: argparse.Namespace, overrides: list[str]) -> Loaded | None:
    """The checkpoint loaded under the training config (by the loader the entry point provides, see
    wavalign.world.loader), or None after printing why it cannot be."""
    from pathlib import Path

    if not Path(args.checkpoint).is_file():
        print(f"error: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return None
    loaded = load(args.config, args.checkpoint, overrides)
    if loaded.world is None:
        print(
            f"error: {args.config} has no 'world' key: {args.command} reads the embedded world's questions",
            file=sys.stderr,
        )
        return None
    return loaded


def _probe_heard(args: argparse.Namespace, overrides: list[str]) -> int:
    """Record the candidates, sample the checkpoint's replies, print one line per candidate."""
    from wavalign.world.diagnose import sample_diagnoses, summarise
    from wavalign.world.heard_probe import CANDIDATES, write_variant_benches

    if args.n < 1:
        print(f"error: --n must be at least 1, got {args.n}", file=sys.stderr)
        return 2
    loaded = _load(args, overrides)
    if loaded is None:
        return 2
    module, world = loaded.module, loaded.world
    benches = write_variant_benches(world.dir, args.out or f"{world.dir}/heard_probe", args.n, world.seed)
    print(f"{args.checkpoint}: {args.n} training questions per recording, {args.samples} sampled replies each")
    print(f"{'recording':12s} {'voice, pitch, wpm':>22s} {'code change':>12s} {'accuracy %':>11s} {'restated %':>11s}")
    for name, spec in CANDIDATES:
        bench, change = benches[name]
        s = summarise(sample_diagnoses(module, str(bench), args.samples))["all"]
        print(
            f"{name:12s} {', '.join(map(str, spec)):>22s} {change:12.3f} {s['accuracy']:11.1f} {s['restated']:11.1f}",
            flush=True,
        )
    return 0


def _calibrate(args: argparse.Namespace, overrides: list[str]) -> int:
    """Sample the checkpoint's replies to the config's first N training prompts, print the histogram."""
    from pathlib import Path

    from wavalign.data.schema import load_jsonl
    from wavalign.world.calibration import format_report, probe

    if args.n < 1 or args.samples < 1:
        print(f"error: --n and --samples must be at least 1, got {args.n} and {args.samples}", file=sys.stderr)
        return 2
    loaded = _load(args, overrides)
    if loaded is None:
        return 2
    train = Path(loaded.world.dir) / "train.codes.jsonl"
    result = probe(loaded.module, load_jsonl(train)[: args.n], args.samples)
    print(f"{args.checkpoint} on {train}")
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(result.to_json() + "\n", encoding="utf-8")
    return 0


def _diagnose(args: argparse.Namespace, overrides: list[str]) -> int:
    """Load the checkpoint into the training config's module, print the table."""
    from pathlib import Path

    from wavalign.world.diagnose import format_table, sample_diagnoses, summarise

    loaded = _load(args, overrides)
    if loaded is None:
        return 2
    module, world = loaded.module, loaded.world
    bench = Path(world.dir) / f"{args.split}.bench.jsonl"
    if not bench.is_file():
        print(f"error: {bench} does not exist (the heard split needs --world.n_heard > 0)", file=sys.stderr)
        return 2
    diagnoses = sample_diagnoses(module, str(bench), args.samples, args.temperature)
    print(f"{args.checkpoint} on {bench}, {args.samples} sampled replies per item")
    print(format_table(summarise(diagnoses)))
    return 0


if __name__ == "__main__":  # `python -m wavalign.world ...` is `wavalign world ...` (wavalign.world.loader says why)
    run_as_wavalign(["world"])
