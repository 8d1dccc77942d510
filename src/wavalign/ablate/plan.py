"""What an ablation runs: its settings, its rows (configs/ablations/ plus the library's other gate rules) and the two
generated configs every row starts from (the SFT warm start and the RL base), so that every row gets the same world,
warm start, steps, data and learning rate and differs only by its own overlay file."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wavalign.ablate.row_sets import MATCHED, MATCHED_SOURCE, in_plan, matched_overlay
from wavalign.world.settings import WorldSettings

QUICK_WORLD = WorldSettings(n_train=16, n_val=4, n_test=2, n_heard=4, teacher_wrong_answer=0.3, teacher_wrong_style=0.2)
# Chosen before any ablation was run (docs/ablation.md says why): 30 % of training questions taught with a wrong
# answer leaves the warm start a large, checkable error that only the reward knows about; 20 % of demonstrations in
# a wrong style gives EQ room to drop under an anchor that imitates them.
DEFAULT_WORLD = WorldSettings(n_heard=150, teacher_wrong_answer=0.3, teacher_wrong_style=0.2)
# The world settings plan.json has always recorded; other fields enter it only when they leave their default, so a
# work directory made before the world was a WorldSettings keeps its fingerprint. `dir` (always <work>/world) and
# `workers` (speed only) never do.
_PLAN_WORLD_KEYS = ("n_train", "n_val", "n_test", "n_heard", "num_codes", "teacher_wrong_answer", "teacher_wrong_style")


def world_fingerprint(world: WorldSettings) -> dict[str, Any]:
    """The part of plan.json that records the ablation's world."""
    default = WorldSettings()
    return {
        f.name: getattr(world, f.name)
        for f in dataclasses.fields(world)
        if f.name not in ("dir", "workers")
        and (f.name in _PLAN_WORLD_KEYS or getattr(world, f.name) != getattr(default, f.name))
    }


@dataclass
class AblationSettings:
    """Everything that decides the numbers (saved as plan.json; a work directory never mixes two plans)."""

    base_config: str = "configs/tiny.yaml"
    sft_config: str = "configs/tiny_sft.yaml"
    rows_dir: str = "configs/ablations"
    work: str = ".cache/ablate"
    # 9 seeds by docs/testbed.md's seed-count rule 2: the fewest whose minimum detectable difference at the 7-seed
    # run's spread is 3 points (measured: 2.8 points, in 1 h 47 min on 2 idle cores; docs/testbed.md)
    seeds: list[int] = field(default_factory=lambda: list(range(9)))
    steps: int = 200
    sft_steps: int = 1000  # by docs/testbed.md's calibration rule 2 (success 30.9 %, 34.0 % equal graded groups)
    world: WorldSettings = field(default_factory=lambda: dataclasses.replace(DEFAULT_WORLD))  # its dir: world_dir
    iq_samples: int = 4
    eval_max_items: int | None = None  # per evaluation split; None = all
    max_new_tokens: int | None = None  # None = the base configs' own
    batch_size: int | None = None  # examples per step of both stages; None = the base configs' own
    extra_gates: list[str] = field(default_factory=list)  # user gate rules (class paths), one extra row each
    plan: str = "paper"  # which rows: "paper" or "hybrid" (wavalign.ablate.row_sets)
    threads: int = 1  # torch threads per run
    # The RL reward: "graded" (wavalign.world.graded_judge.GradedAnswerJudge, 1-5 with partial credit, so groups have
    # spread and the gate's terms vary: docs/testbed.md) or "config" (the base config's own judge).
    reward: str = "graded"
    analysis_prompts: int = 50  # validation prompts x G warm-start samples for the judge figures (ablate/analysis.py)
    # A seed is a replicate: it sets the rollout sampling (`seed_everything`) and the training data order
    # (`data.init_args.seed`). Work directories made before the data order followed the seed lack this key and are refused.
    seed_sets_data_order: bool = True

    def fingerprint(self) -> dict[str, Any]:
        """The settings every run of one work directory must share (more seeds or gate rows may be added later)."""
        from wavalign.world.teacher import HEARD_VOICES

        out = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in ("work", "seeds", "extra_gates", "threads", "plan")
        }
        out["world"] = world_fingerprint(self.world)
        if self.world.n_heard:  # the heard split's recordings are code, not settings: a change is another plan
            out["heard_voices"] = [list(v) for v in HEARD_VOICES]
        return out

    @property
    def world_dir(self) -> str:
        return f"{self.work}/world"

    @property
    def warm_start(self) -> str:
        return f"{self.work}/checkpoints/warm_start/last.ckpt"


@dataclass(frozen=True)
class Row:
    name: str
    overlay: str  # the YAML file layered on the RL base config
    gate: str  # the gate rule's class path
    po_tokens: str
    after: str | None = None  # a row whose first-seed run this one needs first (its overlay is written from it)


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ablation: config {p} does not exist")
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"ablation: {p} is not a YAML mapping")
    return data


def library_gates() -> list[str]:
    """Class paths of every concrete gate rule in the wavalign.gates package, found by walking its modules (a rule
    added as one new file there is a row without further registration): `wavalign.gates.<Name>` where the package
    exports it, else `wavalign.gates.<module>.<Name>`."""
    import pkgutil

    import wavalign.gates as gates

    paths = set()
    for info in pkgutil.iter_modules(gates.__path__):
        module = importlib.import_module(f"wavalign.gates.{info.name}")
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, gates.GateRule)
                and not inspect.isabstract(obj)
                and obj.__module__ == module.__name__
            ):
                exported = getattr(gates, name, None) is obj
                paths.add(f"wavalign.gates.{name}" if exported else f"{module.__name__}.{name}")
    return sorted(paths)


def _same_rule(class_path: str) -> Any:
    """The class a path names (so `wavalign.gates.hpt.HPTGate` and `wavalign.gates.HPTGate` are one rule), or the
    path itself when it does not import here."""
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return class_path


def discover_rows(settings: AblationSettings, only: list[str] | None = None) -> list[Row]:
    """The rows: each configs/ablations/*.yaml that sets a gate rule (judge or world overlays are not rows), then one
    row per library or user gate rule on text tokens that no file runs on text tokens already."""
    rows: list[Row] = []
    for path in sorted(Path(settings.rows_dir).glob("*.yaml")):
        data = _read_yaml(path)
        rule = (data.get("gate") or {}).get("rule")
        if not rule:
            continue
        po = (data.get("model") or {}).get("po_tokens", "text")
        overlay = _scaled_schedule(path, data, settings)
        rows.append(Row(path.stem, overlay, rule["class_path"], po))
    covered = {(_same_rule(r.gate), r.po_tokens) for r in rows}
    gen = Path(settings.work) / "rows"
    user_rows = set()
    for gate in [*library_gates(), *settings.extra_gates]:
        if (_same_rule(gate), "text") in covered:
            continue
        covered.add((_same_rule(gate), "text"))
        name = f"{gate.rsplit('.', 1)[-1]}_text"
        gen.mkdir(parents=True, exist_ok=True)
        overlay = gen / f"{name}.yaml"
        overlay.write_text(
            f"# generated by wavalign.ablate: {gate} on text tokens\n"
            + yaml.safe_dump({"model": {"po_tokens": "text"}, "gate": {"rule": {"class_path": gate}}})
        )
        rows.append(Row(name, str(overlay), gate, "text"))
        if gate in settings.extra_gates:
            user_rows.add(name)
    if any(r.name == MATCHED_SOURCE for r in rows):
        overlay = str(matched_overlay(settings.work))
        rows.append(Row(MATCHED, overlay, "wavalign.gates.FixedGate", "text", after=MATCHED_SOURCE))
    rows = [r for r in rows if in_plan(r.name, settings.plan, user_rows)]
    if only:
        unknown = sorted(set(only) - {r.name for r in rows})
        if unknown:
            raise ValueError(f"ablation: unknown rows {unknown}; known: {[r.name for r in rows]}")
        rows = [r for r in rows if r.name in only]
        names = {r.name for r in rows}
        for r in rows:
            if r.after and r.after not in names:
                raise ValueError(f"ablation: row {r.name} needs row {r.after} (its λ is measured there); add it")
    if not rows:
        raise ValueError(f"ablation: no rows (no YAML in {settings.rows_dir} sets gate.rule)")
    return rows


ROW_FILE_STEPS = 200  # the run length the row files' step schedules are written for (AblationSettings.steps)


def _scaled_schedule(path: Path, data: dict[str, Any], settings: AblationSettings) -> str:
    """The row's overlay, or, when its rule has a step schedule (init args named *_steps, e.g. CHORD's mu decay) and
    the ablation runs another length, a generated copy with the schedule scaled to settings.steps: a decay written
    for 200 steps would otherwise end early in a longer run and never end in a shorter one."""
    args = data["gate"]["rule"].get("init_args") or {}
    timed = {k: v for k, v in args.items() if k.endswith("_steps") and isinstance(v, int) and v > 0}
    if not timed or settings.steps == ROW_FILE_STEPS:
        return str(path)
    scaled = {k: max(1, round(v * settings.steps / ROW_FILE_STEPS)) for k, v in timed.items()}
    data = {**data, "gate": {**data["gate"], "rule": {**data["gate"]["rule"], "init_args": {**args, **scaled}}}}
    gen = Path(settings.work) / "rows"
    gen.mkdir(parents=True, exist_ok=True)
    out = gen / path.name
    note = f"# generated by wavalign.ablate from {path}: {sorted(timed)} scaled to {settings.steps} steps\n"
    out.write_text(note + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(out)


def _rebase(obj: Any, work: str) -> Any:
    """Move the configs' .cache/ paths (world, checkpoints) under the ablation's work directory."""
    if isinstance(obj, dict):
        return {k: _rebase(v, work) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rebase(v, work) for v in obj]
    if isinstance(obj, str) and obj.startswith(".cache/world"):
        return f"{work}/world" + obj[len(".cache/world") :]
    if isinstance(obj, str) and obj.startswith(".cache/checkpoints/"):
        rest = obj[len(".cache/checkpoints/") :].split("/", 1)  # <stage>[/file]: the one warm start of the plan
        return f"{work}/checkpoints/warm_start" + (f"/{rest[1]}" if len(rest) > 1 else "")
    return obj


def _benchmark(cfg: dict[str, Any], settings: AblationSettings) -> dict[str, Any]:
    """The config's BenchmarkCallback, on the validation split and (when the world has one) the heard split."""
    bench = next((c for c in cfg["trainer"]["callbacks"] if c["class_path"].endswith("BenchmarkCallback")), None)
    if bench is None:
        raise ValueError("ablation: the base configs need a BenchmarkCallback (it measures IQ, EQ and WER)")
    args = dict(bench["init_args"])
    splits = ["val", "heard"] if settings.world.n_heard else ["val"]
    suites = [
        {
            "class_path": "wavalign.benchmarks.generic.GenericSuite",
            "init_args": {
                "name": f"world_{split}",
                "path": f"{settings.world_dir}/{split}.bench.jsonl",
                "max_items": settings.eval_max_items,
            },
        }
        for split in splits
    ]
    args.update(suites=suites, at_start=False, iq_samples=settings.iq_samples, by_category=False, save_items=True)
    return {"class_path": bench["class_path"], "init_args": args}


def _common(cfg: dict[str, Any], settings: AblationSettings, steps: int) -> dict[str, Any]:
    cfg = _rebase(cfg, settings.work)
    cfg["world"] = dataclasses.asdict(dataclasses.replace(settings.world, dir=settings.world_dir))
    t = cfg["trainer"]
    t.update(
        max_steps=steps,
        val_check_interval=steps,
        limit_val_batches=1,
        enable_progress_bar=False,
        log_every_n_steps=max(1, min(10, steps)),
    )
    t["logger"] = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": f"{settings.work}/runs", "name": "warm_start", "version": "seed0"},
    }
    if settings.max_new_tokens:
        for key in ("sampling", "eval_sampling"):
            if key in cfg["model"]:
                cfg["model"][key]["max_new_tokens"] = settings.max_new_tokens
    return cfg


def write_configs(settings: AblationSettings) -> tuple[str, str]:
    """Write <work>/sft.yaml (the warm start) and <work>/rl.yaml (the RL base every row overlays); return both."""
    work = Path(settings.work)
    work.mkdir(parents=True, exist_ok=True)
    sft = _common(_read_yaml(settings.sft_config), settings, settings.sft_steps)
    sft["trainer"]["callbacks"] = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {"dirpath": str(Path(settings.warm_start).parent), "save_top_k": 0, "save_last": True},
        },
        _benchmark(sft, settings),
    ]
    sched = sft["model"].get("scheduler", {}).get("init_args", {})
    if "T_max" in sched:
        sched["T_max"] = settings.sft_steps
    rl = _common(_read_yaml(settings.base_config), settings, settings.steps)
    rl["trainer"]["enable_checkpointing"] = False
    rl["trainer"]["callbacks"] = [
        _benchmark(rl, settings),
        {
            "class_path": "wavalign.callbacks.geometry.GradientGeometryCallback",
            "init_args": {"every_n_steps": max(1, settings.steps // 4)},
        },
    ]
    rl["model"]["init_checkpoint"] = settings.warm_start
    if settings.reward == "graded":
        rl["model"]["judge"] = {"class_path": "wavalign.world.graded_judge.GradedAnswerJudge"}
    elif settings.reward != "config":
        raise ValueError(f"ablation: reward must be 'graded' or 'config', got {settings.reward!r}")
    rl["warm_start_config"] = str(work / "sft.yaml")
    sched = rl["model"].get("scheduler", {}).get("init_args", {})
    for key in ("total_steps", "T_max"):
        if key in sched:
            sched[key] = settings.steps
    if settings.batch_size:
        for cfg in (sft, rl):
            cfg["data"]["init_args"]["batch_size"] = settings.batch_size
    header = "# generated by python -m wavalign.ablate from {} (do not edit: rewritten every run)\n"
    for name, cfg, src in (("sft.yaml", sft, settings.sft_config), ("rl.yaml", rl, settings.base_config)):
        (work / name).write_text(header.format(src) + yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return str(work / "sft.yaml"), str(work / "rl.yaml")


def check_plan(settings: AblationSettings) -> None:
    """Write <work>/plan.json, or refuse when the work directory holds runs of another plan (resume needs the same)."""
    path = Path(settings.work) / "plan.json"
    mine = settings.fingerprint()
    if path.is_file():
        theirs = json.loads(path.read_text())
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(
                f"ablation: {settings.work} holds runs of another plan (differs in {diff}); "
                f"use another --work directory or delete it"
            )
        return
    Path(settings.work).mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mine, indent=2, sort_keys=True) + "\n")
