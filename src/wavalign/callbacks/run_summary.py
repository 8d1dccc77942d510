"""RunSummary: what a run achieved and where its outputs are, on the terminal and as summary.json / summary.md.

A long `fit` otherwise ends with Lightning's own lines: the IQ it reached is in TensorBoard only and nothing says
where the checkpoint went. At the end of `fit` (and of `validate` / `test`) this callback prints a short report and
writes it to the logger's folder:
- the evaluation metrics (default eval/iq, eval/eq, eval/wer with IQ's standard error) at the first and the last
  evaluation of the run, read back from the run's own TensorBoard events (the BenchmarkCallback's `at_start`
  evaluation is the step-0 "before" figure; the last validation is "after"); `validate` / `test` report their values;
- wall time: of the whole command when the CLI passes its start (world preparation and warm start included, each
  also on its own), else from this callback's setup;
- the checkpoint (every ModelCheckpoint's last or best file), the TensorBoard folder, the rollout audio clips
  logged there (RolloutAudioLogger) and the command that scores the test split or writes the listening page.
The CLI adds it to every run under the top-level `summary:` key; only the global-zero process reports.
"""

from __future__ import annotations

import glob
import json
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

# Lower is better for WER; for the other metrics higher is better.
DEFAULT_METRICS = {"IQ": "eval/iq", "EQ": "eval/eq", "WER": "eval/wer"}


def format_duration(seconds: float) -> str:
    """12 min 46 s, 1 h 02 min, 42 s: how the README and the report write durations."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def read_event_series(log_dir: str | Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, int]]:
    """Every scalar series in the TensorBoard event files under log_dir ({tag: [(step, value), ...]} sorted by step),
    and how many clips each audio tag holds."""
    from tensorboard.backend.event_processing.event_accumulator import AUDIO, SCALARS, EventAccumulator

    scalars: dict[str, list[tuple[int, float]]] = {}
    audio: dict[str, int] = {}
    for path in sorted(glob.glob(str(Path(log_dir) / "**" / "events.out.tfevents.*"), recursive=True)):
        acc = EventAccumulator(path, size_guidance={SCALARS: 0, AUDIO: 0})
        acc.Reload()
        for tag in acc.Tags()[SCALARS]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        for tag in acc.Tags()[AUDIO]:
            audio[tag] = audio.get(tag, 0) + len(acc.Audio(tag))
    for series in scalars.values():
        series.sort(key=lambda p: p[0])
    return scalars, audio


def with_resumed_history(
    series: dict[str, list[tuple[int, float]]], ckpt_path: str | None, log_dir: str | None
) -> dict[str, list[tuple[int, float]]]:
    """A resumed run logs to a new version: its series start at the resume. Prepend what the version that wrote the
    resumed checkpoint logged (its `<version>/checkpoints/*.ckpt` folder), so "first" is that run's first evaluation;
    a step logged in both keeps the resumed run's value."""
    folder = Path(ckpt_path).parent if ckpt_path else None
    if folder is None or folder.name != "checkpoints" or not log_dir or folder.parent == Path(log_dir):
        return series
    earlier, _ = read_event_series(folder.parent)
    out = dict(series)
    for tag, points in earlier.items():
        now = dict(out.get(tag, []))
        out[tag] = sorted({**dict(points), **now}.items())
    return out


class RunSummary(pl.Callback):
    """Prints what a run achieved and where its outputs are, and writes it as <log_dir>/<file_stem>.json and .md.

    Args:
        enabled: Report at all; False turns the summary off.
        metrics: Label -> logged metric name of the figures to report (IQ's standard error is `<name>_se` when
            logged); None reports IQ, EQ and WER (eval/iq, eval/eq, eval/wer).
        file_stem: Plain file name (no folder) of the written files: <log_dir>/<file_stem>.json and .md.
    """

    def __init__(self, enabled: bool = True, metrics: dict[str, str] | None = None, file_stem: str = "summary") -> None:
        if not file_stem or "/" in file_stem:
            raise ValueError(f"summary.file_stem must be a plain file name, got {file_stem!r}")
        self.enabled = enabled
        self.metrics = dict(DEFAULT_METRICS if metrics is None else metrics)
        self.file_stem = file_stem
        # Set by the CLI: when the command started (time.time()), how long its stages before the Trainer took, the
        # command line and config files (for the hints).
        self.started_at: float | None = None
        self.stage_seconds: dict[str, float] = {}
        self.command: str | None = None
        self.configs: list[str] = []
        self.python = "python"
        self.report: dict[str, Any] = {}  # the latest report, for tests and callers
        self.text = ""
        self._trainer_started: float | None = None

    # ---- hooks ---------------------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.started_at is None:
            self.started_at = time.time()
        self._trainer_started = time.time()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, "fit")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate" and not trainer.sanity_checking:
            self._finish(trainer, "validate")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, "test")

    # ---- the report ----------------------------------------------------------------------------------------------
    def _finish(self, trainer: pl.Trainer, stage: str) -> None:
        if not self.enabled or not trainer.is_global_zero:
            return
        self.report = self.build(trainer, stage)
        self.text = render_text(self.report)
        print("\n" + self.text, flush=True)
        if self.report["log_dir"]:
            out = Path(self.report["log_dir"])
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{self.file_stem}.json").write_text(json.dumps(self.report, indent=2) + "\n", encoding="utf-8")
            (out / f"{self.file_stem}.md").write_text(render_markdown(self.report), encoding="utf-8")

    def build(self, trainer: pl.Trainer, stage: str) -> dict[str, Any]:
        """The report as plain data (what summary.json holds)."""
        now = time.time()
        tb = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        log_dir = tb.log_dir if tb is not None else None
        if tb is not None:
            tb.experiment.flush()  # the last evaluation's values may still sit in the writer's queue
        series, audio = read_event_series(log_dir) if log_dir and Path(log_dir).is_dir() else ({}, {})
        if stage == "fit":
            series = with_resumed_history(series, trainer.ckpt_path, log_dir)
        rows = []
        for label, name in self.metrics.items():
            row: dict[str, Any] = {"label": label, "name": name}
            if stage == "fit" and series.get(name):
                (s0, v0), (s1, v1) = series[name][0], series[name][-1]
                row.update(last_step=s1, last=v1)
                se = dict(series.get(f"{name}_se", []))
                if s1 in se:
                    row["last_se"] = se[s1]
                if s0 != s1:  # one evaluation only (a resumed run's): shown once, not as both "first" and "last"
                    row.update(first_step=s0, first=v0, **({"first_se": se[s0]} if s0 in se else {}))
            elif name in trainer.callback_metrics:  # validate / test, or a fit logged without TensorBoard
                row.update(last=float(trainer.callback_metrics[name]), last_step=trainer.global_step)
                if f"{name}_se" in trainer.callback_metrics:
                    row["last_se"] = float(trainer.callback_metrics[f"{name}_se"])
            rows.append(row)
        checkpoints = []
        if stage != "fit":  # the checkpoint that was evaluated
            checkpoints = [str(trainer.ckpt_path)] if trainer.ckpt_path else []
        for cb in trainer.checkpoint_callbacks if stage == "fit" else []:
            if isinstance(cb, ModelCheckpoint):
                path = cb.last_model_path or cb.best_model_path
                if path:
                    checkpoints.append(str(path))
        return {
            "stage": stage,
            "split": {"fit": "validation", "validate": "validation", "test": "test"}[stage],
            "command": self.command,
            "python": self.python,
            "configs": list(self.configs),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)),
            "global_step": trainer.global_step,
            "max_steps": trainer.max_steps,
            "wall_seconds": now - (self.started_at or now),
            "stage_seconds": {**self.stage_seconds, stage: now - (self._trainer_started or now)},
            "metrics": rows,
            "checkpoints": checkpoints,
            "log_dir": log_dir,
            "rollout_audio": {tag: n for tag, n in sorted(audio.items())},
            "files": [str(Path(log_dir) / f"{self.file_stem}.{ext}") for ext in ("json", "md")] if log_dir else [],
        }


def _value(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if v is None or not math.isfinite(v):
        return "-"
    se = row.get(f"{key}_se")
    return f"{v:.2f} ± {se:.2f}" if se is not None and math.isfinite(se) else f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"


def _step(step: int | None) -> str:
    return "-" if step is None else "step 0 (start)" if step == 0 else f"step {step}"


def _hints(report: dict[str, Any]) -> list[str]:
    if not report["checkpoints"]:
        return []
    configs = " ".join(f"--config {c}" for c in report["configs"]) or "--config CONFIG"
    ckpt = report["checkpoints"][0]
    py = report.get("python") or "python"
    return [
        f"test split:     {py} -m wavalign test {configs} --ckpt_path {ckpt}",
        f"listen:         {py} -m wavalign predict {configs} --ckpt_path {ckpt}",
    ]


def _lines(report: dict[str, Any]) -> list[str]:
    """Shared body of the text and markdown renderings: (metric table, then where things are)."""
    stages = ", ".join(f"{k} {format_duration(v)}" for k, v in report["stage_seconds"].items())
    out = [f"wall time:      {format_duration(report['wall_seconds'])} ({stages})"]
    out += [f"checkpoint:     {c}" for c in report["checkpoints"]] or ["checkpoint:     none written"]
    if report["log_dir"]:
        out.append(
            f"TensorBoard:    {report['log_dir']}  (tensorboard --logdir {Path(report['log_dir']).parent.parent})"
        )
        clips = sum(report["rollout_audio"].values())
        if clips:
            out.append(
                f"rollout audio:  {clips} clips in TensorBoard's Audio tab ({', '.join(report['rollout_audio'])})"
            )
        out.append(f"this summary:   {', '.join(report['files'])}")
    else:
        out.append("TensorBoard:    no TensorBoardLogger in this run")
    if report["stage"] == "fit":
        out += _hints(report)
    return out


def render_text(report: dict[str, Any]) -> str:
    """The terminal report: a small table of the metrics, then where the outputs are."""
    head = f"=== WavAlign {report['stage']}: done at step {report['global_step']}"
    if report["max_steps"] and report["max_steps"] > 0:
        head += f" / {report['max_steps']}"
    lines = [head + " ==="]
    fit = report["stage"] == "fit"
    rows = [r for r in report["metrics"] if r.get("last") is not None]
    if rows:
        if fit:
            last_step = rows[0].get("last_step", report["global_step"])
            first_step = rows[0].get("first_step")
            columns = [("first", first_step)] * (first_step is not None) + [("last", last_step)]
            lines.append(f"{report['split']:<15} " + " ".join(f"{_step(step):>16}" for _, step in columns))
            lines += [f"  {r['label']:<13} " + " ".join(f"{_value(r, key):>16}" for key, _ in columns) for r in rows]
            lines.append("  (TensorBoard steps: an evaluation after n updates is logged at step n - 1)")
        else:
            lines += [f"{report['split']} {r['label']:<8} {_value(r, 'last')}" for r in rows]
    else:
        lines.append(
            f"no {', '.join(r['name'] for r in report['metrics'])} were logged (is a BenchmarkCallback configured?)"
        )
    return "\n".join(lines + _lines(report))


def render_markdown(report: dict[str, Any]) -> str:
    """summary.md: the same report as a markdown table and list."""
    out = [
        f"# WavAlign {report['stage']} summary",
        "",
        f"Finished {report['finished']} at step {report['global_step']}.",
    ]
    if report["command"]:
        out += ["", f"Command: `{report['command']}`"]
    rows = [r for r in report["metrics"] if r.get("last") is not None]
    if rows:
        if report["stage"] == "fit":
            first_step = rows[0].get("first_step")
            columns = [("first", first_step)] * (first_step is not None) + [("last", rows[0].get("last_step"))]
            out += [
                "",
                f"| {report['split']} | " + " | ".join(_step(step) for _, step in columns) + " |",
                "|---|" + "---|" * len(columns),
            ]
            out += [f"| {r['label']} | " + " | ".join(_value(r, key) for key, _ in columns) + " |" for r in rows]
        else:
            out += ["", f"| {report['split']} | value |", "|---|---|"]
            out += [f"| {r['label']} | {_value(r, 'last')} |" for r in rows]
    out += [""] + [f"- {line.split(':', 1)[0]}: {line.split(':', 1)[1].strip()}" for line in _lines(report)]
    return "\n".join(out) + "\n"
