"""A static listening page (index.html) over one or more `wavalign predict` folders, side by side.

One row per prompt (question, spoken question, requested style, reference answer, demonstration), one column per
folder (e.g. the warm start and the RL checkpoint, answering the same prompt file) with each reply's text, an audio
player and its judge scores. Plain HTML with relative links and every text escaped: it opens from a file browser,
no server. Folders are matched prompt by prompt through their ids, and must have answered the same questions.

    python -m wavalign.predict.listening_page OUT_DIR RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
from html import escape
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

STYLE = """body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}.reply{margin-bottom:.6em}
.score{color:#555;font-size:90%}.muted{color:#888}audio{display:block;width:100%;max-width:22em}"""


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """(meta, rows by prompt id) of one predict folder; a missing or malformed replies.jsonl names the file."""
    root = Path(run_dir)
    path = root / "replies.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{root} holds no replies.jsonl: is it a `wavalign predict` output folder?")
    rows: dict[int, dict[str, Any]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows[int(row["id"])] = row
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}:{lineno}: not a replies.jsonl line ({e})") from None
    meta_path = root / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return meta, rows


def _link(target: str | Path, page_dir: Path) -> str:
    """A relative, URL-quoted link from the page's folder to `target` (forward slashes on every platform)."""
    rel = os.path.relpath(Path(target).resolve(), page_dir.resolve())
    return quote(rel.replace(os.sep, "/"))


def _audio(target: str | Path, page_dir: Path) -> str:
    return f'<audio controls preload="none" src="{escape(_link(target, page_dir))}"></audio>'


def _replies_cell(row: dict[str, Any] | None, run_dir: Path, page_dir: Path) -> str:
    if row is None:
        return '<td class="muted">(this prompt was not answered here)</td>'
    parts = []
    for k, reply in enumerate(row["replies"]):
        html = [f'<div class="reply"><b>#{k + 1}</b> {escape(reply["text"]) or "<span class=muted>(no text)</span>"}']
        if reply.get("audio"):
            html.append(_audio(run_dir / reply["audio"], page_dir))
        scores = ", ".join(f"{escape(str(n))} {v:.2f}" for n, v in sorted(reply.get("parts", {}).items()))
        flag = "" if reply.get("reliable", True) else " (unreliable)"
        html.append(
            f'<div class="score">score {reply["score"]:.2f}{flag}{" — " + scores if scores else ""}</div></div>'
        )
        parts.append("".join(html))
    return "<td>" + "".join(parts) + "</td>"


def _prompt_cell(row: dict[str, Any], page_dir: Path) -> str:
    html = [f"<b>{escape(str(row['id']))}.</b> {escape(row['question'])}"]
    if row.get("question_audio") and Path(row["question_audio"]).is_file():
        html.append(_audio(row["question_audio"], page_dir))
    for key, name in (("style", "style"), ("reference", "reference"), ("demonstration", "demonstration")):
        if row.get(key):
            html.append(f'<div class="score">{name}: {escape(str(row[key]))}</div>')
    return "<td>" + "".join(html) + "</td>"


def _label(meta: dict[str, Any], run_dir: Path) -> str:
    mean = meta.get("mean_score")
    extra = f"<br><span class=score>mean score {mean:.2f}</span>" if isinstance(mean, (int, float)) else ""
    return f"{escape(run_dir.name)}<br><span class=score>{escape(str(meta.get('checkpoint', '')))}</span>{extra}"


def write_page(out_dir: str | Path, run_dirs: Sequence[str | Path]) -> Path:
    """Write out_dir/index.html over the predict folders in `run_dirs` (the first one's prompts set the rows)."""
    if not run_dirs:
        raise ValueError("write_page needs at least one predict folder")
    page_dir = Path(out_dir)
    runs = [(Path(d), *load_run(d)) for d in run_dirs]
    first_dir, _, first_rows = runs[0]
    for run_dir, _, rows in runs[1:]:
        for pid in first_rows.keys() & rows.keys():
            if rows[pid]["question"] != first_rows[pid]["question"]:
                raise ValueError(
                    f"{run_dir} and {first_dir} answered different prompts (prompt {pid}: {rows[pid]['question']!r} vs "
                    f"{first_rows[pid]['question']!r}): run predict on the same data.predict_file"
                )
    header = "".join(f"<th>{_label(meta, d)}</th>" for d, meta, _ in runs)
    body = []
    for pid in sorted(first_rows):
        cells = [_prompt_cell(first_rows[pid], page_dir)] + [
            _replies_cell(rows.get(pid), d, page_dir) for d, _, rows in runs
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    title = "WavAlign replies: " + " vs ".join(d.name for d, _, _ in runs)
    html = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{escape(title)}</title><style>{STYLE}</style></head>'
        f"<body><h1>{escape(title)}</h1><table><thead><tr><th>prompt</th>{header}</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table></body></html>\n"
    )
    page_dir.mkdir(parents=True, exist_ok=True)
    page = page_dir / "index.html"
    page.write_text(html, encoding="utf-8")
    return page


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wavalign.predict.listening_page", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("out_dir", help="where index.html is written")
    parser.add_argument("run_dirs", nargs="+", help="`wavalign predict` output folders, one column each")
    args = parser.parse_args(argv)
    print(f"listening page: {write_page(args.out_dir, args.run_dirs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
