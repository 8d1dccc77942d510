"""Configs explain themselves: every setting a YAML file can reach has a description that `fit --help` shows.

jsonargparse reads Google-style `Args:` sections (docstring_parser): a parameter's description is taken from the
docstrings of the class's own bases, of its __init__ and of the class itself, the class winning. These tests hold
the package's classes to that:
(a) every __init__ parameter of every wavalign class a config can name (each `class_path` in configs/**/*.yaml,
    commented-out alternatives included), of the classes the CLI adds itself, of the wavalign classes those take as
    typed arguments (SamplingConfig, LoraSettings, ...) and of the package's subclasses of such argument types (any
    judge, policy source or codec a config could name instead) has a description;
(b) `wavalign fit --help` (and `--data.help`, the data module being a subclass-mode argument) prints a description
    sentence for every top-level model, data and gate field, not just its type and default.
Classes from other libraries (torch optimisers, Lightning loggers and strategies) document themselves.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pkgutil
import re
import typing
from pathlib import Path

import docstring_parser
import pytest
import yaml

import wavalign.cli as cli

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
# Where the CLI reaches a class itself (cli.py: the model and data classes given to WavAlignCLI, the
# add_lightning_class_args keys and the typed --world argument); checked against cli.py's source below.
CLI_CLASSES = [
    cli.WavAlignModule,
    cli.WavAlignDataModule,
    cli.GateCallback,
    cli.RunGuards,
    cli.DivergenceGuard,
    cli.ReplyWriter,
    cli.RunSummary,
    cli.WorldSettings,
]
# Base-class modules whose docstrings describe themselves, not the parameters of derived classes (as jsonargparse).
SKIPPED_DOC_MODULES = {"abc", "attr", "attrs", "builtins", "enum", "pydantic", "typing", "typing_extensions"}
COMMENTED_CLASS_PATH = re.compile(r"#.*\bclass_path:\s*(wavalign\.[\w.]+)")


def _class_paths(node: object, found: set[str]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("class_path"), str):
            found.add(node["class_path"])
        for value in node.values():
            _class_paths(value, found)
    elif isinstance(node, list):
        for value in node:
            _class_paths(value, found)


def config_class_paths() -> set[str]:
    """Every wavalign class_path in configs/**/*.yaml, walked recursively, plus the commented-out alternatives."""
    found: set[str] = set()
    for path in CONFIGS:
        text = path.read_text(encoding="utf-8")
        for document in yaml.safe_load_all(text):
            _class_paths(document, found)
        found.update(COMMENTED_CLASS_PATH.findall(text))
    return {p for p in found if p.startswith("wavalign.")}


def _resolve(class_path: str) -> type:
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _is_ours(obj: object) -> bool:
    return inspect.isclass(obj) and obj.__module__.startswith("wavalign.")


def _wavalign_types(hint: object, out: set[type]) -> None:
    if _is_ours(hint):
        out.add(hint)
    for arg in typing.get_args(hint):
        _wavalign_types(arg, out)


def _import_package_of(cls: type) -> None:
    """Import every module of the subpackage defining `cls` (e.g. wavalign.judges), so its subclasses exist."""
    parts = cls.__module__.split(".")
    package = importlib.import_module(".".join(parts[:2]))
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), package.__name__ + "."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)


def _subclasses(cls: type) -> list[type]:
    found, todo = [], list(cls.__subclasses__())
    while todo:
        sub = todo.pop()
        found.append(sub)
        todo.extend(sub.__subclasses__())
    return [s for s in found if _is_ours(s)]


def reached_classes() -> tuple[dict[str, type], list[str]]:
    """{'module.Class': class} of everything a config reaches, and the class paths that do not import."""
    broken: list[str] = []
    todo: list[type] = list(CLI_CLASSES)
    for path in sorted(config_class_paths()):
        try:
            todo.append(_resolve(path))
        except (ImportError, AttributeError) as error:
            broken.append(f"{path}: {error}")
    seen: dict[str, type] = {}
    while todo:
        cls = todo.pop()
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name in seen:
            continue
        seen[name] = cls
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # an unresolvable annotation: its parameters are still checked, its types not followed
            hints = {}
        types: set[type] = set()
        for key, hint in hints.items():
            if key != "return":
                _wavalign_types(hint, types)
        for argument_type in types:
            todo.append(argument_type)
            _import_package_of(argument_type)
            todo.extend(_subclasses(argument_type))
    return seen, broken


def config_parameters(cls: type) -> list[str]:
    """The __init__ parameters a config can set: all but self and *args / **kwargs."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def described_parameters(cls: type) -> dict[str, str]:
    """Parameter descriptions as jsonargparse collects them: bases first, then __init__, then the class itself."""
    bases = [b for b in reversed(inspect.getmro(cls)[1:]) if b.__module__.split(".")[0] not in SKIPPED_DOC_MODULES]
    docs: dict[str, str] = {}
    for source in [*bases, cls.__init__, cls]:
        try:
            parsed = docstring_parser.parse(source.__doc__ or "")
        except docstring_parser.ParseError:
            continue
        docs.update({p.arg_name: p.description.strip() for p in parsed.params if (p.description or "").strip()})
    return docs


def test_the_cli_classes_listed_here_are_the_ones_cli_py_adds():
    source = inspect.getsource(cli)
    names = set(re.findall(r"add_lightning_class_args\((\w+)", source))
    names |= set(re.findall(r"add_argument\([^)]*type=(\w+)", source))
    added = {getattr(cli, n) for n in names if _is_ours(getattr(cli, n, None))}
    assert added | {cli.WavAlignModule, cli.WavAlignDataModule} == set(CLI_CLASSES)


def test_every_config_reachable_parameter_has_a_description():
    classes, broken = reached_classes()
    assert not broken, "class paths in configs/ that do not import:\n" + "\n".join(broken)
    assert {"wavalign.policy.base.SamplingConfig", "wavalign.judges.http.HttpJudge"} <= classes.keys()  # walk sanity
    missing = [
        f"{name}: {param}"
        for name, cls in sorted(classes.items())
        for param in config_parameters(cls)
        if param not in described_parameters(cls)
    ]
    assert not missing, (
        f"{len(missing)} config-reachable parameters have no description in an `Args:` docstring section "
        "(so `fit --help` shows only their type):\n" + "\n".join(missing)
    )


# ---- (b) what `fit --help` prints ----------------------------------------------------------------------------------
OPTION = re.compile(r"^  (--[\w.+-]+)(.*)$")
TYPE_SUFFIX = re.compile(r"\((?:required, )?type: .*\)\s*$", re.DOTALL)


def help_text(args: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr("sys.argv", ["wavalign"])  # not pytest's: LightningCLI warns when given args and argv both
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        cli.main(args)
    assert stop.value.code in (0, None), out.getvalue()[-2000:]
    return out.getvalue()


def option_descriptions(text: str) -> dict[str, str]:
    """{'--model.beta': its help text without jsonargparse's '(type: ..., default: ...)' suffix} of a help page."""
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = OPTION.match(line)
        if match:
            # the option's metavars are one space apart; its help, when on the same line, starts after two or more
            rest = re.split(r"\s{2,}", match.group(2).strip(), maxsplit=1)
            current = entries.setdefault(match.group(1), [])
            if len(rest) == 2:
                current.append(rest[1])
        elif current is not None and line.startswith(" " * 4) and line.strip():
            current.append(line.strip())
        else:
            current = None
    return {name: TYPE_SUFFIX.sub("", " ".join(words)).strip() for name, words in entries.items()}


def top_level_fields(descriptions: dict[str, str], prefix: str) -> dict[str, str]:
    """The `--<prefix>.<field>` options, neither deeper ones (--model.sampling.temperature) nor `.help` actions."""
    pattern = re.compile(rf"--{re.escape(prefix)}\.\w+$")
    return {name: text for name, text in descriptions.items() if pattern.match(name)}


def test_fit_help_describes_every_model_data_and_gate_field(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one help entry per line where it fits: easier to read back
    fit = option_descriptions(help_text(["fit", "--help"], monkeypatch))
    data = option_descriptions(help_text(["fit", "--data.help", "WavAlignDataModule"], monkeypatch))
    fields = {**top_level_fields(fit, "model"), **top_level_fields(data, "data"), **top_level_fields(fit, "gate")}
    assert {"--model.group_size", "--data.train_file", "--gate.rule"} <= fields.keys()  # the parsing found them
    bare = sorted(name for name, text in fields.items() if not re.search(r"[A-Za-z]{2,}", text))
    assert not bare, (
        f"{len(bare)} fields have no description in `fit --help` (only their type and default):\n" + "\n".join(bare)
    )
