"""docs/benchmarks.md as a reader runs it: every bash block, in order, in one shell, on fixtures standing in for the
network: `git clone` of github.com/MatthewCYM/VoiceBench and github.com/alibaba/vstyle reaches local repositories
(git's url.<base>.insteadOf), `hf download` answers from a Hub cache holding the data files (HF_HUB_OFFLINE), and
the judges are chat-completions servers on 127.0.0.1 (the doc's ${*_JUDGE_URL:-...} defaults, overridden). The
figures it writes are checked against values derived by hand."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from chat_server import chat_server, user_text, write_prompts
from conftest import ROOT
from doc_blocks import bash_blocks, named_blocks
from voicebench_checkout import write_checkout

DOC = ROOT / "docs" / "benchmarks.md"
SHIM = """#!/bin/sh
exec {python} -c 'import sys
from wavalign.commands import dispatch
code = dispatch(sys.argv[1:])
if code is not None:
    sys.exit(code)
from wavalign.cli import main
main()' "$@"
"""
REVISION = "0" * 40


def tone(hz: float, fmt: str = "WAV") -> bytes:
    t = np.arange(8000) / 16000
    buf = io.BytesIO()
    sf.write(buf, 0.3 * np.sin(2 * np.pi * hz * t), 16000, format=fmt)
    return buf.getvalue()


def git_repo(folder):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fixture"]):
        subprocess.run(["git", *args], cwd=folder, check=True, env=env)


def hub_dataset(hf_home, repo, files: dict[str, bytes]):
    root = hf_home / "hub" / f"datasets--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(REVISION)
    for name, data in files.items():
        path = root / "snapshots" / REVISION / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def parquet_bytes(rows) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


VSTYLE_EXAMPLE = [  # upstream's example layout; the judge reads its score from the instruction
    ("acoustic_attributes/age", 4),
    ("acoustic_attributes/composite_properties", 2),
    ("instruction/emotion", 5),
]


@pytest.fixture
def world(tmp_path):
    remotes = tmp_path / "remotes"
    write_checkout(remotes / "MatthewCYM")  # -> remotes/MatthewCYM/VoiceBench
    git_repo(remotes / "MatthewCYM" / "VoiceBench")
    vstyle = remotes / "alibaba" / "vstyle"
    (vstyle / "lalm_eval" / "eval_prompts" / "en").mkdir(parents=True)
    write_prompts(vstyle / "lalm_eval" / "eval_prompts" / "en")
    example = vstyle / "data" / "examples" / "model_res" / "en"
    (example / "wav").mkdir(parents=True)
    rows = []
    for i, (ability, score) in enumerate(VSTYLE_EXAMPLE, start=1):
        name = f"{ability.replace('/', '-')}-{i}-gpt-4o.mp3"
        (example / "wav" / name).write_bytes(tone(200 + 40 * i, "MP3"))
        rows.append(
            {
                "instruct_text": f"Say it (score {score})",
                "ability": ability,
                "instruct_id": i,
                "id": i,
                "model_name": "gpt-4o",
                "response_audio_path": name,
                "response_text": "ok",
            }
        )
    (example / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    git_repo(vstyle)

    hf = tmp_path / "hf"
    audio = {"bytes": tone(300), "path": "q.wav"}
    hub_dataset(
        hf,
        "hlt-lab/voicebench",
        {
            "sd-qa/usa-00000-of-00001.parquet": parquet_bytes(
                [
                    {"audio": audio, "prompt": "Capital of France?", "reference": "Paris"},
                    {"audio": audio, "prompt": "Largest ocean?", "reference": "Pacific"},
                ]
            ),
            "openbookqa/test-00000-of-00001.parquet": parquet_bytes(
                [
                    {"audio": audio, "prompt": "Which is a metal? ...", "reference": "B"},
                    {"audio": audio, "prompt": "Which is a gas? ...", "reference": "A"},
                ]
            ),
        },
    )
    hub_dataset(
        hf,
        "zhanjun/VStyle",
        {
            "en/metadata.jsonl": json.dumps(
                {
                    "id": 1,
                    "instruct_id": 1,
                    "ability": "instruction/emotion",
                    "instruct_text": "Say it happily",
                    "file_name": "wav/1.wav",
                }
            ).encode()
            + b"\n",
            "en/wav/1.wav": tone(250),
        },
    )

    work = tmp_path / "work"
    work.mkdir()
    (work / "configs").symlink_to(ROOT / "configs")
    replies = {  # what VoiceBench's main.py writes: the split's rows but the audio, plus "response"
        "mymodel-sd-qa-usa-audio.jsonl": [
            {"prompt": "Capital of France?", "reference": "Paris", "response": "right"},
            {"prompt": "Largest ocean?", "reference": "Pacific", "response": "Atlantic"},
        ],
        "mymodel-openbookqa-test-audio.jsonl": [
            {"prompt": "Which is a metal? ...", "reference": "B", "response": "I think it's B, because..."},
            {"prompt": "Which is a gas? ...", "reference": "A", "response": "The answer is: **C**"},
        ],
    }
    for name, lines in replies.items():
        (work / name).write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    for name, text in named_blocks(DOC).items():  # "save this as my_benchmarks.yaml"
        (work / name).write_text(text, encoding="utf-8")
    bin_dir = tmp_path / "bin"  # `wavalign`: its tool commands dispatched before Lightning is imported (8 s a start)
    bin_dir.mkdir()
    (bin_dir / "wavalign").write_text(SHIM.format(python=sys.executable), encoding="utf-8")
    (bin_dir / "wavalign").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.path.dirname(sys.executable)}:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT / "src"),
        "HOME": str(tmp_path),
        "HF_HOME": str(hf),
        "HF_HUB_OFFLINE": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.file://{remotes}/.insteadOf",
        "GIT_CONFIG_VALUE_0": "https://github.com/",
    }
    return work, env


def votes(body):
    return ["Yes", "yes", "No"] if "<candidate>right" in user_text(body) else ["No", "no", "Yes"]


def vstyle_scores(body):
    score = re.search(r"score (\d)", user_text(body)).group(1)
    return [f"[[{score}]]"]


def test_every_command_of_the_benchmarks_doc_runs(world):
    work, env = world
    script = "\n".join(bash_blocks(DOC))
    assert "git clone" in script and "hf download" in script and "wavalign score" in script
    with chat_server(votes) as vb, chat_server(vstyle_scores) as vs:
        env.update(VOICEBENCH_JUDGE_URL=vb.url, VSTYLE_JUDGE_URL=vs.url)
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert vb.requests and len(vs.requests) == 3
    assert run.stdout.strip().splitlines()[-1] == "3"  # the overlay kept all three callbacks
    voicebench = json.loads((work / "results" / "voicebench" / "figures.json").read_text())
    assert voicebench["eval/voicebench/sd-qa"] == 50.0  # 'right' voted correct 2:1, 'Atlantic' not
    assert voicebench["eval/voicebench/openbookqa"] == 50.0  # B right; C against A wrong
    vstyle = json.loads((work / "results" / "vstyle" / "figures.json").read_text())
    # age 4 (w 0.125/6), composite 2 (w 0.125), instruction/emotion 5 (w 0.25/3):
    # acoustic (1/3) / (7/48) = 16/7; overall (1/3 + 5/12) / (11/48) = 36/11
    assert vstyle["eval/vstyle/acoustic_attributes"] == pytest.approx(16 / 7)
    assert vstyle["eval/vstyle/overall"] == pytest.approx(36 / 11)
    exported = [
        json.loads(line) for line in (work / "data" / "voicebench" / "sd-qa_usa.jsonl").read_text().splitlines()
    ]
    assert [r["reference"] for r in exported] == ["Paris", "Pacific"] and (
        work / "data" / "voicebench" / exported[0]["audio"]
    ).is_file()
    resolved = (work / "resolved.yaml").read_text()
    assert "PeriodicCheckpoint" in resolved and "GradientGeometryCallback" in resolved and "VStyleSuite" in resolved
