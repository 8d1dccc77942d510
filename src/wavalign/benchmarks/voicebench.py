"""VoiceBench (Chen et al. 2024, github.com/MatthewCYM/VoiceBench), one subset exported to JSONL.

VoiceBench is distributed as Hugging Face parquet (hlt-lab/voicebench, one config per subset) whose rows are
{"audio": <Audio>, "prompt": str} plus, per subset, "reference" (sd-qa: the answer text; openbookqa, mmsu: the
choice letter; bbh), "key"/"instruction_id_list"/"kwargs" (ifeval) or "id" (bbh). Its own main.py writes the same
rows without the audio. We read one subset a file, a row a line, with the audio exported as a path:

    {"prompt": "Who wrote Hamlet?", "audio": "audio/sdqa_0.wav", "reference": "William Shakespeare"}
    {"prompt": "Which is a mammal? A. shark B. whale ...", "audio": {"path": "audio/obqa_3.wav"}, "reference": "B"}

prompt (required): the instruction's transcript. audio (optional): a path or {"path": ...}, relative to the file.
reference (optional): the answer; rows without one (alpacaeval, commoneval, ifeval, advbench) are open-ended.
subset: which VoiceBench subset the file holds; "openbookqa" and "mmsu" make the references choice letters.
The sub-category is the row's "category" or "split" (e.g. the sd-qa region, the mmsu domain), else the subset.
VoiceBench's GPT-judged scores and its ifeval/advbench evaluators are not reproduced: the callback's judges are.
"""

from __future__ import annotations

from pathlib import Path

from wavalign.benchmarks.base import BenchmarkError, BenchmarkItem, audio_path, need_str, opt_str, read_rows, take

CHOICE_SUBSETS = ("openbookqa", "mmsu")
SUBSETS = ("alpacaeval", "alpacaeval_full", "alpacaeval_speaker", "commoneval", "wildvoice", "sd-qa", "mmsu",
           "openbookqa", "bbh", "mtbench", "ifeval", "advbench")  # fmt: skip


def load_voicebench(
    path: str | Path, name: str, subset: str | None = None, max_items: int | None = None
) -> list[BenchmarkItem]:
    path = Path(path)
    if subset is not None and subset not in SUBSETS:
        raise BenchmarkError(f"{path}: unknown VoiceBench subset {subset!r}; known: {list(SUBSETS)}")
    answer_type = "choice" if subset in CHOICE_SUBSETS else "text"
    items = []
    for where, row in read_rows(path):
        if row.get("reference") is not None and not isinstance(row["reference"], str):
            raise BenchmarkError(f"{where}: field 'reference' must be a string, got {type(row['reference']).__name__}")
        reference = opt_str(row, "reference", where)
        if answer_type == "choice" and reference is not None and len(reference) != 1:
            raise BenchmarkError(f"{where}: field 'reference' must be one choice letter in subset {subset}, got {reference!r}")
        items.append(
            BenchmarkItem(
                question=need_str(row, "prompt", where),
                audio=audio_path(row["audio"], path.parent, where, "audio") if row.get("audio") is not None else None,
                references=(reference,) if reference else (),
                benchmark=name,
                category=opt_str(row, "category", where) or opt_str(row, "split", where) or subset or "",
                answer_type=answer_type,
                source=where,
            )
        )
    return take(items, max_items, path)
