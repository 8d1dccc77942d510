"""python -m wavalign.ablate: rows from configs/ablations/ plus the library's other gate rules, generated configs
that differ only by the row overlay, mean ± 95 % intervals, and a quick end-to-end run that resumes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from wavalign.ablate.__main__ import main
from wavalign.ablate.plan import (
    DEFAULT_WORLD,
    QUICK_WORLD,
    AblationSettings,
    discover_rows,
    library_gates,
    world_fingerprint,
    write_configs,
)
from wavalign.ablate.report import aggregate, mean_ci
from wavalign.world.settings import WorldSettings


@pytest.fixture
def at_root(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(root)  # the default settings name configs/... relative to the repository
    return root


def test_rows_are_the_ablation_files_plus_other_gate_rules(at_root: Path, tmp_path: Path) -> None:
    settings = AblationSettings(work=str(tmp_path), extra_gates=["my_gates.WarmupGate"])
    rows = {r.name: r for r in discover_rows(settings)}
    # the paper plan (default): its rows, the matched fixed λ and the user's rule; world_split_judge.yaml changes the
    # judge, not the gate: not a row
    assert set(rows) == {
        "full_token",
        "sft_only",
        "text_fixed_0.5",
        "text_fixed_matched",
        "wavalign",
        "wavalign_no_ema",
        "RLOnly_text",
        "WarmupGate_text",
    }
    assert rows["text_fixed_matched"].after == "wavalign" and rows["wavalign"].after is None
    hybrid = {r.name for r in discover_rows(replace(settings, plan="hybrid"))}
    assert hybrid == {
        "sft_only",
        "wavalign",
        "hpt",
        "chord_mu",
        "chord_phi",
        "srft",
        "luffy",
        "relift",
        "WarmupGate_text",
    }
    with pytest.raises(ValueError, match="needs row wavalign"):
        discover_rows(settings, ["text_fixed_matched"])
    with pytest.raises(ValueError, match="plan must be one of"):
        discover_rows(replace(settings, plan="nope"))
    assert library_gates() == [
        f"wavalign.gates.{n}"
        for n in (
            "CHORDGate",
            "DynamicGate",
            "FixedGate",
            "HPTGate",
            "LUFFYGate",
            "RLOnly",
            "ReLIFTGate",
            "SFTOnly",
            "SRFTGate",
        )
    ]
    assert (rows["full_token"].gate, rows["full_token"].po_tokens) == ("wavalign.gates.RLOnly", "all")
    extra = yaml.safe_load(Path(rows["RLOnly_text"].overlay).read_text())
    assert extra == {"model": {"po_tokens": "text"}, "gate": {"rule": {"class_path": "wavalign.gates.RLOnly"}}}
    assert [r.name for r in discover_rows(settings, ["wavalign"])] == ["wavalign"]
    with pytest.raises(ValueError, match="unknown rows"):
        discover_rows(settings, ["nope"])


def test_a_rules_step_schedule_follows_the_ablations_length(at_root: Path, tmp_path: Path) -> None:
    """chord_mu.yaml decays mu over 200 steps (written for the default 200-step runs): a 400-step ablation gets a
    generated copy decaying over 400, the default keeps the file itself."""
    rows = {r.name: r for r in discover_rows(AblationSettings(work=str(tmp_path), steps=400, plan="hybrid"))}
    scaled = yaml.safe_load(Path(rows["chord_mu"].overlay).read_text())["gate"]["rule"]["init_args"]
    assert scaled["mu_decay_steps"] == 400 and scaled["mu_peak"] == 0.9 and scaled["mu_warmup_steps"] == 0
    assert rows["wavalign"].overlay == "configs/ablations/wavalign.yaml"  # no schedule: the file itself
    default = {r.name: r for r in discover_rows(AblationSettings(work=str(tmp_path / "d"), plan="hybrid"))}
    assert default["chord_mu"].overlay == "configs/ablations/chord_mu.yaml"


def test_generated_configs_share_world_warm_start_steps_and_evaluation(at_root: Path, tmp_path: Path) -> None:
    settings = AblationSettings(work=str(tmp_path / "w"), steps=50, sft_steps=70, eval_max_items=9)
    sft_path, rl_path = write_configs(settings)
    sft, rl = yaml.safe_load(Path(sft_path).read_text()), yaml.safe_load(Path(rl_path).read_text())
    assert ".cache/" not in Path(sft_path).read_text() + Path(rl_path).read_text()  # everything under the work dir
    assert rl["model"]["init_checkpoint"] == settings.warm_start and rl["warm_start_config"] == sft_path
    assert sft["trainer"]["callbacks"][0]["init_args"]["dirpath"] == str(Path(settings.warm_start).parent)
    assert rl["world"] == sft["world"]
    assert WorldSettings(**rl["world"]) == replace(DEFAULT_WORLD, dir=settings.world_dir)  # the same world, moved
    assert (rl["trainer"]["max_steps"], rl["model"]["scheduler"]["init_args"]["total_steps"]) == (50, 50)
    assert (sft["trainer"]["max_steps"], sft["model"]["scheduler"]["init_args"]["T_max"]) == (70, 70)
    for cfg in (sft, rl):
        bench = next(c for c in cfg["trainer"]["callbacks"] if c["class_path"].endswith("BenchmarkCallback"))
        assert [s["init_args"]["name"] for s in bench["init_args"]["suites"]] == ["world_val", "world_heard"]
        assert all(s["init_args"]["max_items"] == 9 for s in bench["init_args"]["suites"])
        assert (
            bench["init_args"]["eq_judge"]["init_args"]["profiles_file"] == f"{settings.world_dir}/style_profiles.json"
        )
        assert bench["init_args"]["save_items"] is True  # per-item results for paired comparisons
    assert rl["model"]["judge"] == {"class_path": "wavalign.world.graded_judge.GradedAnswerJudge"}  # graded reward
    kept = AblationSettings(work=str(tmp_path / "k"), reward="config")
    assert yaml.safe_load(Path(write_configs(kept)[1]).read_text())["model"]["judge"]["init_args"] == {"match": "final"}


def test_plan_records_the_world_as_it_did_before_world_settings() -> None:
    """plan.json's world is the dict ablations always wrote, so their work directories resume; a field outside it
    enters only when changed, and the folder and the synthesis workers never (they do not change the numbers)."""
    teacher = {"teacher_wrong_answer": 0.3, "teacher_wrong_style": 0.2}
    assert world_fingerprint(DEFAULT_WORLD) == {
        "n_train": 1500,
        "n_val": 150,
        "n_test": 150,
        "n_heard": 150,
        "num_codes": 256,
        **teacher,
    }
    assert world_fingerprint(QUICK_WORLD) == {
        "n_train": 16,
        "n_val": 4,
        "n_test": 2,
        "n_heard": 4,
        "num_codes": 256,
        **teacher,
    }
    moved = replace(DEFAULT_WORLD, dir="elsewhere", workers=8)
    assert world_fingerprint(moved) == world_fingerprint(DEFAULT_WORLD)
    assert world_fingerprint(replace(DEFAULT_WORLD, frame_ms=20.0))["frame_ms"] == 20.0
    assert AblationSettings().fingerprint()["world"] == world_fingerprint(DEFAULT_WORLD)
    assert AblationSettings().world is not DEFAULT_WORLD  # the --teacher-* options change a copy


def test_runs_go_seed_major_and_bad_job_counts_are_refused(at_root: Path, tmp_path: Path, capsys) -> None:
    from wavalign.ablate.runner import job_order

    settings = AblationSettings(work=str(tmp_path), seeds=[0, 1])
    rows = discover_rows(settings, ["sft_only", "wavalign"])
    assert [(r.name, s) for r, s in job_order(settings, rows)] == [
        ("sft_only", 0),
        ("wavalign", 0),
        ("sft_only", 1),
        ("wavalign", 1),
    ]
    with pytest.raises(SystemExit):
        main(["--quick", "--jobs", "0", "--work", str(tmp_path / "w")])
    assert "--jobs and --threads must be at least 1" in capsys.readouterr().err


def test_each_seeds_longest_rows_start_first() -> None:
    from types import SimpleNamespace

    from wavalign.ablate.runner import longest_first

    def q(i: int, name: str, seed: int) -> tuple:
        return (i, SimpleNamespace(name=name), seed, f"{name}/seed{seed}")

    done = {("a", 0): {"wall_s": 100.0}, ("b", 0): {"wall_s": 300.0}, ("c", 0): {"wall_s": 200.0}}
    ready = [q(4, "a", 1), q(5, "b", 1), q(6, "c", 1), q(7, "a", 2), q(8, "b", 2)]
    assert longest_first(ready, done)[1].name == "b"  # seed 1 before seed 2, and b took longest
    assert longest_first([q(4, "a", 1), q(6, "c", 1)], done)[1].name == "c"
    assert longest_first([q(4, "a", 1), q(9, "new", 1)], done)[1].name == "new"  # no time yet: counted longest
    assert longest_first([q(1, "x", 0), q(2, "y", 0)], {})[1].name == "x"  # ties keep the queue's order


def test_mean_and_95_percent_interval_by_hand() -> None:
    # [1, 2, 3]: mean 2, sample sd 1, t(0.975, df=2) = 4.302653 -> half-width 4.302653 / sqrt(3) = 2.48414
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(2.48414, abs=1e-5)
    assert mean_ci([4.0])[0] == 4.0 and mean_ci([4.0])[1] != mean_ci([4.0])[1]  # NaN with one seed
    runs = [
        {"row": "a", "seed": s, "steps": 10, "wall_s": 2.0, "command": "c", "metrics": {"eval/eq": v}}
        for s, v in enumerate([1.0, 2.0, 3.0])
    ]
    assert aggregate(runs)["a"]["stats"]["eval/eq"] == pytest.approx((2.0, 2.48414), abs=1e-5)


def test_quick_ablation_writes_the_report_and_resumes(
    at_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wavalign.cli import load_checkpoint
    from wavalign.world import loader

    monkeypatch.setattr(loader, "_provided", load_checkpoint)  # what `wavalign ablate` provides for the analysis
    work, out = tmp_path / "work", tmp_path / "results"
    args = ["--quick", "--rows", "wavalign", "--work", str(work), "--out", str(out)]
    assert main(args) == 0
    assert "[analysis] started beside the last runs" in capsys.readouterr().out  # on the core the last run left
    assert (work / "runs" / "warm_start" / "analysis.log").is_file()
    report = (out / "ablation.md").read_text()
    line = next(r for r in report.splitlines() if r.startswith("| wavalign |"))
    assert line.split("|")[2].strip() == "2" and " ± " in line  # two seeds, with intervals
    assert "| warm_start | 1 |" in report and "--seed_everything=0" in report
    assert (out / "ablation_tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((work / "runs" / "wavalign" / "seed1" / "result.json").read_text())
    assert result["steps"] == 2 and {"eval/world_val/iq", "eval/world_heard/iq", "eval/eq"} <= set(result["metrics"])
    assert (
        0 < result["cpu_s"]
        and 100 < result["peak_rss_mb"] < 4096
        and (work / "runs" / "wavalign" / "seed1.log").is_file()
    )
    assert "--seed_everything=1 --data.init_args.seed=1" in result["command"]  # a seed is a replicate of order too
    record = json.loads((out / "ablation_run.json").read_text())
    assert record["rows"]["wavalign"]["per_seed"]["1"]["eval/world_val/iq"] == result["metrics"]["eval/world_val/iq"]
    items = (work / "runs" / "wavalign" / "seed1" / "eval_items" / "step2.jsonl").read_text().splitlines()
    assert len(items) == 8  # --quick: 4 validation + 4 heard items, each with its own result (paired comparisons)
    # the run forked from the preloaded server is the run a fresh `python -m wavalign` makes, bit for bit
    from wavalign.ablate import runner

    again = [a.replace("version=seed1", "version=fresh1") for a in result["command"].split()[3:]]
    fresh = runner.run_and_record(again, work / "runs" / "wavalign" / "fresh1", {}, fit=runner.fit_subprocess)
    assert fresh["metrics"] == result["metrics"]
    assert (work / "runs" / "wavalign" / "fresh1" / "eval_items" / "step2.jsonl").read_text().splitlines() == items
    before = (work / "runs" / "wavalign" / "seed1" / "result.json").stat().st_mtime_ns
    analysis = json.loads((work / "runs" / "warm_start" / "seed0" / "analysis.json").read_text())
    assert (analysis["prompts"], analysis["group_size"]) == (2, 4)  # --quick: 2 validation prompts x G
    assert set(analysis["aspects"]) == {"semantic", "content_listening", "acoustic"}
    assert all(1.0 <= a["mean"] <= 5.0 and 0.0 <= a["variance"] <= 4.0 for a in analysis["aspects"].values())
    assert "## Analysis: how reliable is each part of the judge?" in report and "| acoustic (0.5 speech-text" in report

    capsys.readouterr()
    assert main(args) == 0  # resumed: nothing is rerun
    printed = capsys.readouterr().out
    assert "[warm start] cached" in printed and printed.count(": cached (") == 2 and "[analysis] cached" in printed
    assert (work / "runs" / "wavalign" / "seed1" / "result.json").stat().st_mtime_ns == before
    (out / "ablation.md").unlink()
    assert main([*args, "--report-only"]) == 0 and "| wavalign | 2 |" in (out / "ablation.md").read_text()
    # the matched row: a fixed λ equal to wavalign's mean λ on the first seed, run after it (here: from its cached runs)
    assert main([*args[:2], "wavalign", "text_fixed_matched", *args[3:]]) == 0
    overlay = yaml.safe_load((work / "rows" / "text_fixed_matched.yaml").read_text())
    wavalign0 = json.loads((work / "runs" / "wavalign" / "seed0" / "result.json").read_text())
    assert overlay["gate"]["rule"] == {
        "class_path": "wavalign.gates.FixedGate",
        "init_args": {"lam": round(wavalign0["metrics"]["gate/lambda:mean"], 4)},
    }
    matched = json.loads((work / "runs" / "text_fixed_matched" / "seed1" / "result.json").read_text())
    assert "text_fixed_matched.yaml" in matched["command"]
    assert main([*args, "--steps", "3"]) == 2  # another plan in the same work directory is refused
    assert "another plan" in capsys.readouterr().err
    assert main(["--quick", "--report-only", "--work", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no finished" in capsys.readouterr().err


def test_main_leaves_the_callers_sigterm_handler_in_place(at_root: Path, tmp_path: Path) -> None:
    """main() stops its child runs on SIGTERM only while it runs: called in-process (tests, notebooks), a handler
    left behind would make later forked pool workers ignore terminate() and hang their parent."""
    import signal

    before = signal.getsignal(signal.SIGTERM)
    assert main(["--report-only", "--work", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_rule_added_as_one_file_in_the_gates_package_is_a_row(tmp_path: Path, monkeypatch) -> None:
    """No registration: a new module in wavalign.gates (here on an extra package path) is found by walking it."""
    import sys

    import wavalign.gates as gates

    (tmp_path / "halfway.py").write_text(
        "from wavalign.gates.base import GateOutput, GateRule\n\n\n"
        "class HalfwayGate(GateRule):\n"
        "    def update(self, rewards, reliable=None):\n"
        "        return GateOutput(0.5, 0.5)\n"
    )
    monkeypatch.setattr(gates, "__path__", [*gates.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "wavalign.gates.halfway", raising=False)
    try:
        assert "wavalign.gates.halfway.HalfwayGate" in library_gates()
    finally:
        sys.modules.pop("wavalign.gates.halfway", None)


def test_the_warm_start_runs_alone_with_the_threads_of_all_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wavalign.ablate import runner

    seen: dict[str, int] = {}

    class Exited:
        returncode = 1

        def wait(self) -> int:
            return 1

    def spawn(args: list[str], where: Path, meta: dict, threads: int) -> Exited:
        seen["threads"] = threads
        return Exited()

    monkeypatch.setattr(runner, "_spawn", spawn)
    settings = AblationSettings(work=str(tmp_path / "work"), threads=1)
    with pytest.raises(runner.RunFailed):
        runner.warm_start(settings, "sft.yaml", lambda line: None, jobs=2)
    assert seen["threads"] == 2


def test_a_failed_judge_figure_job_is_measured_again_in_the_main_process(
    at_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wavalign.ablate import runner
    from wavalign.cli import load_checkpoint
    from wavalign.world import loader

    monkeypatch.setattr(loader, "_provided", load_checkpoint)

    class Failed:
        returncode = 1

        def wait(self) -> int:
            return 1

    monkeypatch.setattr(runner, "start_analysis", lambda settings, rl_yaml: Failed())
    work = tmp_path / "work"
    args = ["--quick", "--rows", "sft_only", "--seeds", "0", "--work", str(work), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "the job beside the runs failed (exit 1); measuring here" in printed
    assert "[analysis] judge variance and rank consistency" in printed
    assert (work / "runs" / "warm_start" / "seed0" / "analysis.json").is_file()
