"""`python -m wavalign predict` on the debug configs (both policy layouts): replies.jsonl, the page, bad input.

Lightning's own predict loop runs (Trainer.predict -> WavAlignModule.predict_step); `--ckpt_path` restores weights
as in Lightning's checkpoint connector. Run from a scratch directory so nothing is written into the repository."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from wavalign.cli import main
from wavalign.data.schema import SchemaError

PROMPTS = "configs/data/debug_val.jsonl"
QUIET = ["--trainer.enable_progress_bar=false"]
ONE_STEP = [
    "--trainer.max_steps=1",
    "--trainer.limit_val_batches=0",
    "--trainer.logger.init_args.save_dir=runs",
    '--trainer.callbacks=[{"class_path": "wavalign.callbacks.checkpoint.PeriodicCheckpoint"}]',
    *QUIET,
]


@pytest.fixture
def scratch(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "configs").symlink_to(root / "configs")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def checkpoint(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-step checkpoint of the interleaved debug config (made in its own scratch directory)."""
    where = tmp_path_factory.mktemp("fit")
    (where / "configs").symlink_to(root / "configs")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(where)
        main(["fit", "--config", "configs/debug_interleaved.yaml", *ONE_STEP])
    (ckpt,) = where.glob("runs/**/*.ckpt")
    return ckpt


@pytest.fixture(scope="module")
def root() -> Path:
    return Path(__file__).resolve().parents[2]


def predict(config: str, out: str, *extra: str):
    return main(
        ["predict", "--config", config, "--data.predict_file", PROMPTS, "--listen.output_dir", out, *QUIET, *extra]
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class Links(HTMLParser):
    """The page's table rows and the src/href of every element."""

    def __init__(self) -> None:
        super().__init__()
        self.rows, self.links = 0, []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.rows += tag == "tr"
        self.links += [v for k, v in attrs if k in ("src", "href")]


def parse_page(path: Path) -> Links:
    page = Links()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_predict_writes_one_line_per_prompt(scratch: Path, capsys: pytest.CaptureFixture) -> None:
    """(The parallel layout: tests/predict/test_predict_world.py.) G = 2 replies per prompt, each scored by the config's AnswerJudge ('contains': 5 when the reference word is in
    the reply, else 1 + 4 * 0 * 0.5 = 1; wavalign.judges.rules.AnswerJudge), with model.eval_sampling."""
    cli = predict("configs/debug_interleaved.yaml", "out", "--listen.replies_per_prompt=2")
    out = scratch / "out"
    rows = read_jsonl(out / "replies.jsonl")
    questions = [json.loads(line)["question_text"] for line in (scratch / PROMPTS).read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(len(questions)))
    assert [r["question"] for r in rows] == questions
    assert rows[0]["source"] == f"{PROMPTS}:1" and rows[0]["reference"] == "eight"
    emits = 64  # the config's num_speech_tokens
    for row in rows:
        assert set(row) == {
            "id",
            "source",
            "question",
            "reference",
            "demonstration",
            "style",
            "question_audio",
            "replies",
        }
        assert len(row["replies"]) == 2
        for reply in row["replies"]:
            assert set(reply) == {"text", "speech_codes", "score", "reliable", "parts", "audio"}
            assert reply["audio"] is None  # no codec in the debug configs
            assert all(isinstance(c, int) and 0 <= c < emits for c in reply["speech_codes"])
            right = row["reference"] in re.findall(r"[a-z']+", reply["text"].lower())
            assert reply["score"] == (5.0 if right else 1.0)
            assert reply["parts"] == {"correct": float(right)}
    assert any(reply["speech_codes"] for row in rows for reply in row["replies"])
    meta = json.loads((out / "meta.json").read_text())
    ev = cli.model.eval_sampling
    assert meta["sampling"]["temperature"] == ev.temperature and meta["sampling"]["top_p"] == ev.top_p
    assert meta["checkpoint"] == "(untrained weights)" and meta["replies_per_prompt"] == 2
    assert parse_page(out / "index.html").rows == 1 + len(questions)  # header + one per prompt
    assert f"listen: {out / 'index.html'}".replace(str(scratch) + "/", "") in capsys.readouterr().out
    assert not (scratch / "runs").exists()  # predict leaves no logger version behind


def test_side_by_side_page_of_two_checkpoints(scratch: Path, checkpoint: Path) -> None:
    """Untrained weights, then a 1-step checkpoint on the same prompts: one page, both columns, every link resolves."""
    config = "configs/debug_interleaved.yaml"
    predict(config, "listen/before")
    ckpt = checkpoint
    predict(config, "listen/after", "--ckpt_path", str(ckpt), "--listen.compare_with=[listen/before]")
    after = json.loads((scratch / "listen/after/meta.json").read_text())
    assert after["checkpoint"] == str(ckpt)
    html = (scratch / "listen/after/index.html").read_text()
    assert "<th>before<br>" in html and "<th>after<br>" in html and "(untrained weights)" in html and str(ckpt) in html
    n = len(read_jsonl(scratch / "listen/after/replies.jsonl"))
    assert html.count('class="reply"') == 2 * n  # one reply of each checkpoint per prompt


def test_missing_predict_file_names_the_key(scratch: Path) -> None:
    with pytest.raises(ValueError, match="data.predict_file"):
        main(["predict", "--config", "configs/debug_interleaved.yaml", "--data.init_args.predict_file=null", *QUIET])


def test_bad_prompt_file_fails_with_file_and_line(scratch: Path) -> None:
    bad = scratch / "prompts.jsonl"
    bad.write_text('{"prompt": "what is one plus one"}\n{"prompt": 3}\n', encoding="utf-8")
    with pytest.raises(SchemaError, match=rf"{re.escape(str(bad))}:2: field 'prompt' must be str"):
        main(["predict", "--config", "configs/debug_interleaved.yaml", "--data.predict_file", str(bad), *QUIET])


def test_prompts_without_demonstrations_are_answered(scratch: Path) -> None:
    """A user's own prompt file needs no reply; the page then shows no demonstration."""
    prompts = scratch / "mine.jsonl"
    prompts.write_text('{"prompt": "what is <b>one</b> plus one", "reference_answer": "two"}\n', encoding="utf-8")
    main(
        [
            "predict",
            "--config",
            "configs/debug_interleaved.yaml",
            "--data.predict_file",
            str(prompts),
            "--listen.output_dir=out",
            *QUIET,
        ]
    )
    (row,) = read_jsonl(scratch / "out/replies.jsonl")
    assert row["demonstration"] is None and row["reference"] == "two"
    html = (scratch / "out/index.html").read_text()
    assert "what is &lt;b&gt;one&lt;/b&gt; plus one" in html and "<b>one</b>" not in html


def test_checkpoint_of_another_model_fails_clearly(scratch: Path, checkpoint: Path) -> None:
    """An interleaved checkpoint under the parallel config: named file, missing/unexpected weights, no predict run."""
    ckpt = checkpoint
    with pytest.raises(ValueError, match=rf"--ckpt_path {re.escape(str(ckpt))} does not match this config's model"):
        predict("configs/debug_parallel.yaml", "out", "--ckpt_path", str(ckpt))
    assert not (scratch / "out").exists()
    with pytest.raises(FileNotFoundError, match="--ckpt_path nowhere.ckpt does not exist"):
        predict("configs/debug_interleaved.yaml", "out", "--ckpt_path", "nowhere.ckpt")
