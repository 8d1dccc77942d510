"""The embedded world's settings, written once: the `world:` key of a training config (wavalign.cli), the options of
`wavalign world prepare` (generated from the fields below by `add_options`), the ablation's worlds
(wavalign.ablate.plan) and the argument of wavalign.world.prepare.prepare_world all read this one dataclass.

Its docstring's `Args:` section is the help text everywhere: LightningCLI (jsonargparse) reads it for `--help`, and
`field_help` reads it for the argparse options, so a field and its explanation cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorldSettings:
    """What the embedded spoken-dialogue world is built from (wavalign.world.prepare.prepare_world).

    Every field except `dir` and `workers` is recorded in the world's manifest.json: the same values reuse the
    cached world, any change rebuilds it.

    Args:
        dir: Folder the world is written to and reused from.
        seed: Seed of the question split, the examples and the codebook fit (same seed, byte-identical world).
        n_train: Training examples (question, style pairs).
        n_val: Validation examples (their questions are not in the training split).
        n_test: Test examples (their questions are in neither the training nor the validation split).
        num_codes: Codec codebook size (speech tokens of the world codec).
        frame_ms: Codec frame length in milliseconds (one speech token per frame).
        max_fit_utterances: Training utterances the codebook is fitted on (a seeded subset when there are more).
        workers: Parallel espeak-ng syntheses (speed only: the world is the same for any number).
        teacher_wrong_answer: Share of training questions demonstrated with a wrong answer (0: a perfect teacher).
        teacher_wrong_style: Share of training demonstrations spoken in a wrong style (0: every style right).
        n_heard: Examples of the heard split, training questions recorded in other voices and rates (0: none).
    """

    dir: str = field(default=".cache/world", metadata={"aliases": ("--out",)})
    seed: int = 0
    n_train: int = field(default=1500, metadata={"aliases": ("--train",)})
    n_val: int = field(default=150, metadata={"aliases": ("--val",)})
    n_test: int = field(default=150, metadata={"aliases": ("--test",)})
    num_codes: int = 256
    frame_ms: float = 40.0
    # WORLD analysis dominates prepare time; 600 utterances give about 10^4 frames per code
    max_fit_utterances: int = 600
    workers: int = 2
    teacher_wrong_answer: float = 0.0
    teacher_wrong_style: float = 0.0
    n_heard: int = field(default=0, metadata={"aliases": ("--heard",)})

    def check(self) -> None:
        """Raise ValueError naming the first field whose value cannot make a world (before anything is written)."""
        at_least = {
            "n_train": 0,
            "n_val": 0,
            "n_test": 0,
            "n_heard": 0,
            "num_codes": 2,
            "max_fit_utterances": 1,
            "workers": 1,
        }
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"world setting {name} must be at least {low}, got {getattr(self, name)}")
        if not self.frame_ms > 0:
            raise ValueError(f"world setting frame_ms must be positive, got {self.frame_ms}")
        for name in ("teacher_wrong_answer", "teacher_wrong_style"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"world setting {name} must be a share in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_mapping(cls, values: Any) -> WorldSettings:
        """Settings from a mapping or a jsonargparse Namespace (what LightningCLI parsed for `world:`)."""
        if isinstance(values, cls):
            return values
        data = values.as_dict() if hasattr(values, "as_dict") else dict(values)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown world settings {unknown}; known: {sorted(names)}")
        return cls(**data)


def field_help(cls: type = WorldSettings) -> dict[str, str]:
    """Field name -> its sentence(s) of the class docstring's Google-style `Args:` section."""
    lines = (cls.__doc__ or "").splitlines()
    out: dict[str, str] = {}
    current = None
    in_args = False
    for line in lines:
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
            continue
        if not in_args:
            continue
        m = re.match(r"(\w+):\s*(.*)", stripped)
        if m and m.group(1) in {f.name for f in dataclasses.fields(cls)}:
            current = m.group(1)
            out[current] = m.group(2)
        elif stripped and current is not None:
            out[current] += " " + stripped  # a wrapped sentence
        elif not stripped and out:
            break  # the section ends at the first blank line
    return out


def add_options(parser: argparse.ArgumentParser, cls: type = WorldSettings) -> None:
    """One option per field: `--n-train` (plus its old short name, `--train`, from the field's metadata), the
    field's type and default, and its docstring sentence as help."""
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    for f in dataclasses.fields(cls):
        flags = [f"--{f.name.replace('_', '-')}", *f.metadata.get("aliases", ())]
        text = helps.get(f.name, "").rstrip(".").replace("%", "%%")
        metavar = {int: "N", float: "X"}.get(hints[f.name], f.name.upper())
        parser.add_argument(
            *flags,
            dest=f.name,
            type=hints[f.name],
            default=f.default,
            metavar=metavar,
            help=f"{text} (default: %(default)s)",
        )


def from_options(args: argparse.Namespace, cls: type = WorldSettings) -> Any:
    """The settings the options of `add_options` parsed into `args`."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
