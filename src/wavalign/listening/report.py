"""`wavalign listening report SESSION_DIR`: votes -> win / tie / loss per criterion, as Markdown and a PNG.

For each pair of systems and each kind of rater (humans, each judge): rates with bootstrap 95 % intervals over
prompts and a two-sided sign test; the raters' agreement (Fleiss' kappa, mean pairwise Cohen's kappa) where
several raters judged the same trials; and how often each judge agrees with the humans' majority. "Win" is the
first of the pair (the earlier folder given to `build`) preferred.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from wavalign.listening.session import Session, load_session
from wavalign.listening.stats import bootstrap_rate, cohen_kappa, fleiss_kappa, majority, mean_pairwise_cohen, sign_test
from wavalign.listening.votes import Vote, read_votes

OUTCOMES = ("win", "tie", "loss")


@dataclass
class Row:
    """One criterion of one pair for one kind of rater."""

    raters: str  # "humans" or a judge's rater id
    pair: tuple[int, int]
    criterion: str
    counts: dict[str, int]  # outcome -> votes
    intervals: dict[str, tuple[float, float]]  # outcome -> bootstrap 95 % interval of its rate
    prompts: int
    sign: tuple[int, int, float]  # prompts won, prompts lost, two-sided p

    @property
    def votes(self) -> int:
        return sum(self.counts.values())

    def rate(self, outcome: str) -> float:
        return self.counts[outcome] / self.votes if self.votes else math.nan


def outcome(session: Session, vote: Vote, criterion: str) -> tuple[tuple[int, int], str]:
    """(pair of system indices, lower first; the lower one's outcome) of one vote on one criterion."""
    trial = session.trial(vote.trial)
    pair = tuple(sorted((trial.a.system, trial.b.system)))
    choice = vote.choices[criterion]
    if choice == "tie":
        return pair, "tie"
    chosen = (trial.a if choice == "a" else trial.b).system
    return pair, "win" if chosen == pair[0] else "loss"


def win_rows(session: Session, votes: Sequence[Vote], raters: str, seed: int = 0) -> list[Row]:
    """The rows of one kind of rater: per pair and criterion, counts, intervals over prompts and the sign test."""
    rows = []
    for criterion in session.criteria:
        per_prompt: dict[tuple[int, int], dict[int, dict[str, int]]] = defaultdict(dict)
        for vote in votes:
            pair, result = outcome(session, vote, criterion)
            prompt = per_prompt[pair].setdefault(session.trial(vote.trial).prompt_id, dict.fromkeys(OUTCOMES, 0))
            prompt[result] += 1
        for pair in sorted(per_prompt):
            prompts = list(per_prompt[pair].values())
            totals = [sum(p.values()) for p in prompts]
            rows.append(
                Row(
                    raters,
                    pair,
                    criterion,
                    {o: sum(p[o] for p in prompts) for o in OUTCOMES},
                    {o: bootstrap_rate([p[o] for p in prompts], totals, seed=seed) for o in OUTCOMES},
                    len(prompts),
                    sign_test([p["win"] for p in prompts], [p["loss"] for p in prompts]),
                )
            )
    return rows


def agreement(session: Session, humans: Sequence[Vote]) -> list[tuple[str, int, float, float, int]]:
    """Per criterion: (criterion, trials rated by 2+ humans, Fleiss' kappa, mean pairwise Cohen's kappa, pairs)."""
    out = []
    for criterion in session.criteria:
        by_trial: dict[str, list[str]] = defaultdict(list)
        by_rater: dict[str, dict[str, str]] = defaultdict(dict)
        for v in humans:
            by_trial[v.trial].append(v.choices[criterion])
            by_rater[v.rater][v.trial] = v.choices[criterion]
        shared = [labels for labels in by_trial.values() if len(labels) >= 2]
        cohen, pairs = mean_pairwise_cohen(by_rater)
        out.append((criterion, len(shared), fleiss_kappa(shared), cohen, pairs))
    return out


def judge_agreement(session: Session, judge: Sequence[Vote], humans: Sequence[Vote]):
    """Per criterion: (criterion, trials with a human majority, share where the judge picks it, Cohen's kappa)."""
    out = []
    for criterion in session.criteria:
        human_labels: dict[str, list[str]] = defaultdict(list)
        for v in humans:
            human_labels[v.trial].append(v.choices[criterion])
        pairs = [(v.choices[criterion], majority(human_labels[v.trial])) for v in judge if v.trial in human_labels]
        pairs = [(j, h) for j, h in pairs if h is not None]
        share = sum(j == h for j, h in pairs) / len(pairs) if pairs else math.nan
        kappa = cohen_kappa([j for j, _ in pairs], [h for _, h in pairs]) if pairs else math.nan
        out.append((criterion, len(pairs), share, kappa))
    return out


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f} %"


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def _cell(row: Row, o: str) -> str:
    low, high = row.intervals[o]
    return f"{_pct(row.rate(o))} [{_pct(low)}, {_pct(high)}]".replace(" %]", "]").replace(" %,", ",")


def markdown(session: Session, rows: list[Row], humans: Sequence[Vote], judges: dict[str, list[Vote]]) -> str:
    names = [s["name"] for s in session.systems]
    raters = sorted({v.rater for v in humans})
    lines = [
        f"# Listening test: {session.root.resolve().name}",
        "",
        f"Session `{session.id}`: {len(session.trials)} trials, criteria {', '.join(session.criteria)}; "
        f"{len(humans)} human votes from {len(raters)} raters; judges: {', '.join(judges) or 'none'}.",
        "",
        "Systems: "
        + "; ".join(f"**{s['name']}** ({s['folder']}, checkpoint {s['checkpoint']})" for s in session.systems),
        "",
        "Rates are shares of votes; brackets: bootstrap 95 % interval over prompts. Sign test: two-sided, prompts as "
        "units (a prompt goes to the side with more votes there).",
    ]
    for raters_name in ["humans", *judges]:
        for pair in sorted({r.pair for r in rows if r.raters == raters_name}):
            first, second = names[pair[0]], names[pair[1]]
            lines += [
                "",
                f"## {first} vs {second} ({raters_name})",
                "",
                f"Win: {first} preferred; loss: {second} preferred.",
                "",
                "| criterion | votes | prompts | win | tie | loss | prompts won / lost | sign test p |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in (r for r in rows if r.raters == raters_name and r.pair == pair):
                won, lost, p = r.sign
                lines.append(
                    f"| {r.criterion} | {r.votes} | {r.prompts} | {_cell(r, 'win')} | {_cell(r, 'tie')} | "
                    f"{_cell(r, 'loss')} | {won} / {lost} | {p:.4g} |"
                )
    lines += ["", "## Agreement between human raters", ""]
    lines += [
        "| criterion | trials rated 2+ times | Fleiss' κ | mean Cohen's κ | rater pairs |",
        "|---|---|---|---|---|",
    ]
    for criterion, n, fleiss, cohen, pairs in agreement(session, humans):
        lines.append(f"| {criterion} | {n} | {_num(fleiss)} | {_num(cohen)} | {pairs} |")
    for judge, votes in judges.items():
        lines += ["", f"## {judge} vs the human majority", ""]
        lines += ["| criterion | trials | agreement | Cohen's κ |", "|---|---|---|---|"]
        for criterion, n, share, kappa in judge_agreement(session, votes, humans):
            lines.append(f"| {criterion} | {n} | {_pct(share)} | {_num(kappa)} |")
    return "\n".join(lines) + "\n"


def figure(session: Session, rows: list[Row], path: Path) -> Path | None:
    """Stacked win / tie / loss bars per criterion, one panel per pair and kind of rater (the paper's figure);
    None without matplotlib (the `plot` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [s["name"] for s in session.systems]
    panels = sorted({(r.raters, r.pair) for r in rows}, key=lambda k: (k[0] != "humans", k))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8, 0.6 + 0.55 * len(session.criteria) * len(panels) + 0.6 * len(panels)), squeeze=False
    )
    colours = {"win": "#2e7d32", "tie": "#bdbdbd", "loss": "#c62828"}
    for ax, (raters, pair) in zip(axes[:, 0], panels):
        panel = [r for r in rows if r.raters == raters and r.pair == pair][::-1]
        left = [0.0] * len(panel)
        for o in OUTCOMES:
            widths = [100 * r.rate(o) for r in panel]
            ax.barh([r.criterion for r in panel], widths, left=left, color=colours[o], label=o)
            for y, (x0, w) in enumerate(zip(left, widths)):
                if w >= 6:
                    ax.text(x0 + w / 2, y, f"{w:.1f}", ha="center", va="center", fontsize=8)
            left = [x + w for x, w in zip(left, widths)]
        ax.errorbar(
            [100 * r.rate("win") for r in panel],
            [y - 0.3 for y in range(len(panel))],  # under the bar's labels
            xerr=[
                [100 * (r.rate("win") - r.intervals["win"][0]) for r in panel],
                [100 * (r.intervals["win"][1] - r.rate("win")) for r in panel],
            ],
            fmt="none",
            ecolor="black",
            capsize=3,
        )
        ax.set_xlim(0, 100)
        ax.set_title(f"{names[pair[0]]} vs {names[pair[1]]} ({raters})", fontsize=10)
    axes[-1, 0].set_xlabel("% of votes (win: first system preferred; bar: 95 % interval of the win rate)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8, ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(
    session_dir: str | Path, votes: Sequence[str | Path] = (), out: str | Path | None = None, seed: int = 0
):
    """Markdown and PNG of every votes file (default: the session's votes.jsonl and judge_votes.jsonl that exist);
    returns (markdown path, PNG path or None)."""
    session = load_session(session_dir)
    files = [Path(v) for v in votes] or [
        p for p in (session.root / "votes.jsonl", session.root / "judge_votes.jsonl") if p.is_file()
    ]
    if not files:
        raise FileNotFoundError(f"{session.root} has no votes.jsonl or judge_votes.jsonl yet: nothing to report")
    all_votes = [v for f in files for v in read_votes(f, session)]
    humans = [v for v in all_votes if v.kind == "human"]
    judges: dict[str, list[Vote]] = defaultdict(list)
    for v in all_votes:
        if v.kind == "judge":
            judges[v.rater].append(v)
    rows = win_rows(session, humans, "humans", seed) + [
        r for name, vs in sorted(judges.items()) for r in win_rows(session, vs, name, seed)
    ]
    stem = Path(out) if out else session.root / "report"
    stem.parent.mkdir(parents=True, exist_ok=True)
    md = stem.with_suffix(".md")
    md.write_text(markdown(session, rows, humans, dict(sorted(judges.items()))), encoding="utf-8")
    png = figure(session, rows, stem.with_suffix(".png")) if rows else None
    return md, png


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wavalign listening report", description=__doc__.split("\n\n")[0])
    parser.add_argument("session_dir", help="a folder made by `wavalign listening build`")
    parser.add_argument("--votes", nargs="*", default=[], help="votes files (default: the session's own)")
    parser.add_argument("--out", default=None, help="path stem of the .md and .png (default: SESSION_DIR/report)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    args = parser.parse_args(argv)
    md, png = write_report(args.session_dir, args.votes, args.out, args.seed)
    print(f"report: {md}" + (f" and {png}" if png else " (no PNG: install the plot extra for matplotlib)"))
    return 0
