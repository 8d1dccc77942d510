"""`wavalign score`: official VoiceBench / VStyle figures for replies produced outside the template, no policy.

    wavalign score --out results/mymodel \\
        --voicebench sd-qa:mymodel-sd-qa-usa-audio.jsonl --voicebench bbh:mymodel-bbh-test-audio.jsonl \\
        --voicebench-dir VoiceBench --voicebench-judge-url https://api.openai.com/v1 \\
        --vstyle vstyle/en/metadata.jsonl --vstyle-prompts vstyle/lalm_eval/eval_prompts/en \\
        --vstyle-judge-url https://generativelanguage.googleapis.com/v1beta/openai

reads each file in its evaluator's own layout (`benchmarks.replies_file`), scores it with the official judges and
rules (`official_judges`, `voicebench_rules`), reduces with the same `OfficialTally` BenchmarkCallback uses, and
writes <out>/figures.json (the eval/voicebench/... and eval/vstyle/... values the callback logs), <out>/items.jsonl
(one line a reply: where it came from and what it scored) and prints the figures. API keys come from the
environment variables named by --*-key-env (OPENAI_API_KEY, GEMINI_API_KEY by default), never from flags.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from wavalign.benchmarks.base import BenchmarkError
from wavalign.benchmarks.replies_file import ScoredReply, read_voicebench_replies, read_vstyle_replies
from wavalign.benchmarks.tally import LLM_SUBSETS, OfficialTally
from wavalign.benchmarks.voicebench import OPEN_SUBSETS
from wavalign.benchmarks.voicebench_rules import RULE_SUBSETS, VoiceBenchRules
from wavalign.judges.http import JudgeConfigError


class _Replay:
    """Judge results fetched once for all items (concurrently), handed back item by item, so each item's own counts
    can be read off the tally while the judge still sees every request at once."""

    def __init__(self, opens: list[float | None], qas: list[bool | None]) -> None:
        self.opens, self.qas = iter(opens), iter(qas)

    def open_scores(self, items: Sequence[Any]) -> list[float | None]:
        return [next(self.opens) for _ in items]

    def qa_correct(self, items: Sequence[Any]) -> list[bool | None]:
        return [next(self.qas) for _ in items]


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k.split(":", 1)[1]: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}


def score_voicebench(
    replies: Sequence[ScoredReply], judge: Any, rules: VoiceBenchRules | None, seed: int = 0
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(figures, per-reply records) over every VoiceBench reply, one tally as the callback keeps it."""
    items = [r.item for r in replies]
    tally = OfficialTally(items, seed)
    opens = [(r.item.question, r.text) for r in replies if r.item.subset in OPEN_SUBSETS]
    qas = [(r.item.question, r.item.references[0], r.text) for r in replies if r.item.subset == "sd-qa"]
    replay = _Replay(judge.open_scores(opens) if opens else [], judge.qa_correct(qas) if qas else [])
    records = []
    for r in replies:
        before = dict(tally.sums)
        tally.add_voicebench([r.item], [r.text], replay, tally.guesses, rules)
        records.append(
            {"source": r.item.source, "subset": r.item.subset, "response": r.text, **_delta(before, tally.sums)}
        )
    return tally.values(), records


def score_vstyle(replies: Sequence[ScoredReply], judge: Any) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(figures, per-reply records): each reply's audio judged with its category's prompt, reduced as upstream."""
    jobs = []
    for r in replies:
        spoken = r.item.audio
        instruction = _read(spoken) if spoken is not None and judge.send_instruction_audio else (None, 0)
        jobs.append(
            {
                "ability": r.item.category,
                "instruction": r.item.question,
                "reply_audio": r.audio,
                "sample_rate": r.sample_rate,
                "instruction_audio": instruction[0],
                "instruction_rate": instruction[1],
            }
        )
    scores = judge.scores(jobs)
    tally = OfficialTally([r.item for r in replies])
    tally.add_vstyle([r.item for r in replies], scores)
    records = [
        {
            "source": r.item.source,
            "id": r.item.row_id,
            "model_name": r.model_name,
            "ability": r.item.category,
            "score": s,
        }
        for r, s in zip(replies, scores)
    ]
    return tally.values(), records


def _read(path: Path) -> tuple[Any, int]:
    from wavalign.audio.io import read_wav

    return read_wav(path)


def _voicebench_files(specs: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        subset, sep, file = spec.partition(":")
        if not sep or not subset or not file:
            raise BenchmarkError(f"--voicebench {spec!r}: give SUBSET:FILE, e.g. sd-qa:mymodel-sd-qa-usa-audio.jsonl")
        out.append((subset, file))
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wavalign score", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for figures.json and items.jsonl")
    p.add_argument("--seed", type=int, default=0, help="seed of VoiceBench's random guesses where no rule matches")
    p.add_argument("--allow-no-key", action="store_true", help="judges at a local server that needs no API key")
    vb = p.add_argument_group("VoiceBench (main.py outputs)")
    vb.add_argument("--voicebench", action="append", default=[], metavar="SUBSET:FILE", help="one subset's replies")
    vb.add_argument("--voicebench-dir", help="a VoiceBench clone (else $WAVALIGN_VOICEBENCH_DIR): rules and prompts")
    vb.add_argument("--voicebench-judge-url", help="OpenAI-compatible base URL of the GPT judge")
    vb.add_argument("--voicebench-judge-model", default="gpt-4o-mini")
    vb.add_argument("--voicebench-key-env", default="OPENAI_API_KEY", help="variable holding the judge's API key")
    vs = p.add_argument_group("VStyle (response metadata JSONL)")
    vs.add_argument("--vstyle", help="the replies' metadata JSONL (one model)")
    vs.add_argument(
        "--vstyle-audio-root", help="folder the response_audio_path values are relative to (default: the file's)"
    )
    vs.add_argument("--vstyle-prompts", help="VStyle's lalm_eval/eval_prompts/<language> folder")
    vs.add_argument("--vstyle-judge-url", help="OpenAI-compatible base URL of the LALM judge")
    vs.add_argument("--vstyle-judge-model", default="gemini-2.5-pro-preview-06-05")
    vs.add_argument("--vstyle-key-env", default="GEMINI_API_KEY", help="variable holding the judge's API key")
    return p


def run(args: argparse.Namespace) -> dict[str, float]:
    from wavalign.benchmarks.official_judges import VoiceBenchJudge, VStyleJudge

    if not args.voicebench and not args.vstyle:
        raise BenchmarkError("nothing to score: give --voicebench SUBSET:FILE and/or --vstyle FILE")
    figures: dict[str, float] = {}
    records: list[dict[str, Any]] = []
    if args.voicebench:
        replies = [r for subset, f in _voicebench_files(args.voicebench) for r in read_voicebench_replies(f, subset)]
        subsets = {r.item.subset for r in replies}
        judge = None
        if subsets & set(LLM_SUBSETS):
            if not args.voicebench_judge_url:
                raise BenchmarkError(
                    f"VoiceBench {sorted(subsets & set(LLM_SUBSETS))} are scored by its GPT judge: give "
                    "--voicebench-judge-url (and the key in $" + args.voicebench_key_env + ")"
                )
            judge = VoiceBenchJudge(
                args.voicebench_judge_url,
                args.voicebench_judge_model,
                api_key_env=args.voicebench_key_env,
                allow_no_key=args.allow_no_key,
                voicebench_dir=args.voicebench_dir,
            )
        needs_rules = subsets & set(RULE_SUBSETS) or any(r.item.instructions for r in replies)
        rules = (
            VoiceBenchRules.from_checkout(args.voicebench_dir, "wavalign score (VoiceBench)") if needs_rules else None
        )
        got, recs = score_voicebench(replies, judge, rules, args.seed)
        figures.update(got)
        records += recs
    if args.vstyle:
        replies = read_vstyle_replies(args.vstyle, args.vstyle_audio_root)
        if not args.vstyle_judge_url or not args.vstyle_prompts:
            raise BenchmarkError("VStyle is scored by its LALM judge: give --vstyle-judge-url and --vstyle-prompts")
        judge = VStyleJudge(
            args.vstyle_judge_url,
            args.vstyle_judge_model,
            args.vstyle_prompts,
            api_key_env=args.vstyle_key_env,
            allow_no_key=args.allow_no_key,
        )
        got, recs = score_vstyle(replies, judge)
        figures.update(got)
        records += recs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures.json").write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    with open(out / "items.jsonl", "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        figures = run(args)
    except (BenchmarkError, JudgeConfigError, ValueError, FileNotFoundError) as e:
        print(f"wavalign score: {e}")
        return 1
    for name, value in sorted(figures.items()):
        print(f"{name:<48} {value:.4f}")
    print(f"written: {Path(args.out) / 'figures.json'}, {Path(args.out) / 'items.jsonl'}")
    return 0
