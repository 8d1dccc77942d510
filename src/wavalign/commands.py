"""Every command the package offers, under one name: `wavalign <command>` (or `python -m wavalign <command>`).

fit / validate / test / predict are LightningCLI's Trainer commands (wavalign.cli); the others are the package's
tools, each also runnable as its own module (`python -m wavalign.world ...`). `wavalign --help` lists them all with
one line each, from the table below; tests/test_commands.py checks that every entry point of the package is in it.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

LIGHTNING = "wavalign.cli"  # target of the Trainer commands


@dataclass(frozen=True)
class Command:
    """name: what follows `wavalign`; target: the module whose main(argv) runs it (LIGHTNING: the Trainer CLI);
    forward: words put before the user's arguments (a world subcommand)."""

    name: str
    help: str
    target: str
    forward: tuple[str, ...] = ()


COMMANDS: tuple[Command, ...] = (
    Command(
        "fit", "train from a config (configs/tiny.yaml: prepares the world and the SFT warm start first)", LIGHTNING
    ),
    Command("validate", "score a checkpoint on the validation split: IQ / EQ / WER", LIGHTNING),
    Command("test", "score a checkpoint on the test split (data.test_file)", LIGHTNING),
    Command("predict", "spoken replies of a checkpoint: replies.jsonl, WAVs and a listening page", LIGHTNING),
    Command(
        "check-data",
        "check datasets (JSONL, parquet, saved or Hub; schema, audio files, speech codes) before a long run",
        "wavalign.data.check",
    ),
    Command(
        "convert",
        "a public speech-dialogue set (VoiceAssistant-400K, UltraChat-SLAM-Omni, ...) -> the reference schema",
        "wavalign.data.convert.cli",
    ),
    Command(
        "world prepare",
        "build (or reuse, cached) the embedded spoken-dialogue world",
        "wavalign.world.__main__",
        ("prepare",),
    ),
    Command(
        "world info", "the world's question counts per split and vocabulary size", "wavalign.world.__main__", ("info",)
    ),
    Command(
        "world diagnose",
        "per question family: accuracy and answer kinds of a checkpoint's replies",
        "wavalign.world.__main__",
        ("diagnose",),
    ),
    Command(
        "world probe-heard",
        "accuracy of a checkpoint on new recordings of its training questions (heard split)",
        "wavalign.world.__main__",
        ("probe-heard",),
    ),
    Command(
        "world calibrate",
        "a checkpoint's success histogram on the training prompts and its share of equal-reward groups",
        "wavalign.world.__main__",
        ("calibrate",),
    ),
    Command(
        "ablate",
        "the ablation study: every configs/ablations row x seeds -> results/ablation.md",
        "wavalign.ablate.__main__",
    ),
    Command(
        "listening-page",
        "one HTML page over several `predict` folders, side by side",
        "wavalign.predict.listening_page",
    ),
    Command(
        "listening build",
        "a blind pairwise listening test from two or more `predict` folders (docs/listening.md)",
        "wavalign.listening.__main__",
        ("build",),
    ),
    Command(
        "listening serve",
        "serve a listening test on 127.0.0.1; every vote is on disk when acknowledged",
        "wavalign.listening.__main__",
        ("serve",),
    ),
    Command(
        "listening judge",
        "an HTTP judge votes in a listening test, both orders of each pair",
        "wavalign.listening.__main__",
        ("judge",),
    ),
    Command(
        "listening report",
        "a listening test's win / tie / loss rates with intervals, sign test and agreement",
        "wavalign.listening.__main__",
        ("report",),
    ),
    Command(
        "score",
        "official VoiceBench / VStyle figures for a replies file made elsewhere (no policy)",
        "wavalign.benchmarks.score",
    ),
    Command(
        "export-benchmark",
        "benchmark parquet files (VoiceBench, VStyle) -> JSONL + WAV files",
        "wavalign.benchmarks.export",
    ),
)


# Modules with a `__main__` guard that are not user commands: each is started by a command above, with arguments
# that command writes (tests/test_commands.py accepts these and only these as unlisted).
INTERNAL_ENTRY_POINTS: dict[str, str] = {
    "wavalign.ablate.runner": "one run of `ablate`, as its child process (RUN_DIR META_JSON, then `wavalign` args)",
}


def overview() -> str:
    """What `wavalign --help` prints."""
    width = max(len(c.name) for c in COMMANDS) + 2
    lines = [
        "usage: wavalign <command> [options]   (or: python -m wavalign <command> ...)",
        "",
        "WavAlign: RL post-training of speech LLMs with an adaptive SFT/RL gate (PyTorch Lightning).",
        "",
        "commands:",
    ]
    lines += [f"  {c.name:<{width}}{c.help}" for c in COMMANDS]
    lines += [
        "",
        "`wavalign <command> --help` shows a command's options; fit/validate/test/predict take",
        "--config configs/X.yaml and any --section.key=value override (README: Configs).",
    ]
    return "\n".join(lines)


def find(argv: Sequence[str]) -> Command | None:
    """The tool command argv starts with (the longest matching name), or None (a Trainer command or unknown)."""
    best = None
    for c in COMMANDS:
        words = c.name.split()
        if (
            c.target != LIGHTNING
            and list(argv[: len(words)]) == words
            and (best is None or len(words) > len(best.name.split()))
        ):
            best = c
    groups = {"world": "wavalign.world.__main__", "listening": "wavalign.listening.__main__"}
    if best is None and argv and argv[0] in groups:  # `wavalign world --help` and the like: the group's tool itself
        best = Command(argv[0], "", groups[argv[0]])
    return best


def run_tool(command: Command, argv: Sequence[str]) -> int:
    """Run a tool command with the arguments after its name; its exit code (None from main() counts as 0)."""
    rest = list(argv[len(command.name.split()) :])
    entry: Callable[[list[str]], int | None] = importlib.import_module(command.target).main
    code = entry([*command.forward, *rest])
    return 0 if code is None else int(code)


def dispatch(argv: Sequence[str]) -> int | None:
    """Handle `--help` / no command and the tool commands; None when argv is for the Trainer CLI."""
    if not argv or argv[0] in ("-h", "--help"):
        print(overview(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command = find(argv)
    return None if command is None else run_tool(command, argv)
