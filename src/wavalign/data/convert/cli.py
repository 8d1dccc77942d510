"""`wavalign convert --layout NAME --out DIR INPUT ...`: a public speech-dialogue set -> the reference schema.

    wavalign convert --layout instructs2s_200k --out data/is2s "InstructS2S-200K/data/train-*.parquet"
    wavalign convert --layout voiceassistant_400k --text-only-target --out data/va "VoiceAssistant-400K/data/*.parquet"
    wavalign convert --layout emilia --out data/emilia "Emilia/EN/EN-B00000*.tar"

INPUT: what the layout ships (parquet files or a glob, a JSONL file, tar shards for emilia), a save_to_disk folder or
hub:NAME[:CONFIG[:SPLIT]]. Rows are streamed once; each is written as it is converted (<out>/data.jsonl and
<out>/audio/), so memory does not grow with the set. --limit N stops after N rows. A row that cannot be converted
stops the run with its file and row, unless --skip-bad, which lists it and goes on. Then:
`wavalign check-data <out>/data.jsonl --config CFG`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from wavalign.data.convert import LAYOUTS
from wavalign.data.convert.common import ConvertError, Writer
from wavalign.data.schema import SchemaError
from wavalign.data.sources import iter_raw


def _renamed(row: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    return {renames.get(k, k): v for k, v in row.items()}


def convert(
    layout: str,
    inputs: Sequence[str],
    out: str | Path,
    speech_codes: str | None = None,
    text_only_target: bool = False,
    limit: int | None = None,
    skip_bad: bool = False,
    renames: dict[str, str] | None = None,
) -> tuple[Path, int, list[str]]:
    """(the written JSONL, rows written, problems of skipped rows)."""
    if layout not in LAYOUTS:
        raise ConvertError(f"unknown layout {layout!r}; known: {sorted(LAYOUTS)}")
    module = LAYOUTS[layout]
    writer = Writer(out, layout, module.CODES, speech_codes, text_only_target)
    reader = getattr(module, "rows", iter_raw)
    skipped: list[str] = []
    try:
        for spec in inputs:
            for where, base, row in reader(spec):
                if limit is not None and writer.count >= limit:
                    break
                try:
                    writer.add(module.convert(where, _renamed(row, renames or {}), base))
                except ConvertError as e:
                    if not skip_bad:
                        raise
                    skipped.append(str(e))
    finally:
        writer.close_file()
    if not writer.count:
        why = "".join(f"\n  skipped: {p}" for p in skipped)
        raise ConvertError(f"{layout}: no rows converted from {list(inputs)}{why}")
    return writer.path, writer.count, skipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wavalign convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="the set's files, a save_to_disk folder or hub:NAME[:CONFIG[:SPLIT]]")
    parser.add_argument("--layout", required=True, choices=sorted(LAYOUTS))
    parser.add_argument("--out", required=True, help="output folder (data.jsonl, audio/)")
    parser.add_argument("--speech-codes", help="the speech tokenizer the policy speaks (e.g. snac, cosyvoice)")
    parser.add_argument("--text-only-target", action="store_true", help="leave code-only reply speech out")
    parser.add_argument("--limit", type=int, help="stop after N converted rows")
    parser.add_argument("--skip-bad", action="store_true", help="list rows that cannot be converted and go on")
    parser.add_argument("--rename", action="append", default=[], metavar="FIELD=NAME", help="read FIELD as NAME")
    args = parser.parse_args(argv)
    renames = dict(r.split("=", 1) for r in args.rename if "=" in r)
    try:
        path, n, skipped = convert(
            args.layout,
            args.inputs,
            args.out,
            args.speech_codes,
            args.text_only_target,
            args.limit,
            args.skip_bad,
            renames,
        )
    except (ConvertError, SchemaError, FileNotFoundError) as e:
        print(f"wavalign convert: {e}")
        return 1
    for problem in skipped:
        print(f"skipped: {problem}")
    print(f"convert: {n} examples -> {path} ({len(skipped)} skipped)")
    return 0
