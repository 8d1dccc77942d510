"""`wavalign score` on replies files in the evaluators' own layouts, judged by a real chat-completions server on
127.0.0.1: a VStyle response metadata JSONL (alibaba/vstyle data/examples/model_res/en/metadata.jsonl's fields, MP3
replies, a repeated id) reduced as lalm_eval/gemini_eval.py's analyze_scores does, and VoiceBench main.py outputs
(each hlt-lab/voicebench row but its audio, plus "response") scored as evaluate.py / api_judge.py do. Every expected
figure is derived by hand in the comments."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
from chat_server import chat_server, user_text, write_prompts
from voicebench_checkout import write_checkout

from wavalign.benchmarks.score import main

MODEL = "my-model"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def vstyle_row(i, ability_, score, audio=None, **over):
    row = {
        "instruct_text": f"Please say hello (score {score})",
        "ability": ability_,
        "instruct_id": i,
        "id": i,
        "model_name": MODEL,
        "response_audio_path": audio if audio is not None else f"wav/{i}.mp3",
        "response_text": "hello",
    }
    row.update(over)
    return row


@pytest.fixture
def vstyle(tmp_path):
    (tmp_path / "wav").mkdir()
    t = np.arange(8000) / 16000
    for i in range(1, 6):
        sf.write(tmp_path / "wav" / f"{i}.mp3", 0.3 * np.sin(2 * np.pi * 220 * t), 16000, format="MP3")
    rows = [
        vstyle_row(1, "acoustic_attributes/age", 4),
        vstyle_row(2, "acoustic_attributes/composite_properties", 2),
        vstyle_row(3, "instruction/emotion", 5),
        vstyle_row(4, "instruction/emotion", 3),
        vstyle_row(1, "instruction/style", 1, audio="wav/5.mp3"),  # repeats id 1: upstream keeps the first row
    ]
    return write_jsonl(tmp_path / "metadata.jsonl", rows), write_prompts(tmp_path)


def judge_by_instruction(body):
    score = re.search(r"score (\d)", user_text(body)).group(1)
    return [f"Reasoning ... [[{score}]]"]


def test_vstyle_replies_reproduce_upstreams_aggregation(vstyle, tmp_path):
    metadata, prompts = vstyle
    with chat_server(judge_by_instruction) as server:
        code = main(
            [
                "--out",
                str(tmp_path / "out"),
                "--allow-no-key",
                "--vstyle",
                str(metadata),
                "--vstyle-prompts",
                str(prompts),
                "--vstyle-judge-url",
                server.url,
                "--vstyle-key-env",
                "WAVALIGN_TEST_UNSET_KEY",
            ]
        )
        assert code == 0
        assert len(server.requests) == 4  # the repeated id was not judged
        audio = [p for p in server.requests[0]["messages"][0]["content"] if p["type"] == "input_audio"]
        assert len(audio) == 1 and audio[0]["input_audio"]["format"] == "wav"  # the MP3 reply, decoded and sent
    figures = json.loads((tmp_path / "out" / "figures.json").read_text())
    # means per ability: age 4, composite 2, instruction/emotion (5 + 3) / 2 = 4.
    # weights (analyze_scores): age 0.125 / 6, composite 0.125, instruction/emotion 0.25 / 3.
    # acoustic_attributes: (4 x 0.125/6 + 2 x 0.125) / (0.125/6 + 0.125) = (1/3) / (7/48) = 16/7
    # overall: (1/3 + 4 / 12) / (7/48 + 4/48) = (2/3) / (11/48) = 32/11; coverage 11/48
    assert figures["eval/vstyle/acoustic_attributes/age"] == 4.0
    assert figures["eval/vstyle/instruction/emotion"] == 4.0
    assert figures["eval/vstyle/acoustic_attributes"] == pytest.approx(16 / 7)
    assert figures["eval/vstyle/instruction"] == pytest.approx(4.0)
    assert figures["eval/vstyle/overall"] == pytest.approx(32 / 11)
    assert figures["eval/vstyle/coverage"] == pytest.approx(11 / 48)
    items = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    assert [(r["id"], r["score"]) for r in items] == [("1", 4.0), ("2", 2.0), ("3", 5.0), ("4", 3.0)]
    assert items[0]["source"] == f"{metadata}:1" and items[0]["model_name"] == MODEL


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            {"response_audio_path": ""},
            "metadata.jsonl:1: field 'response_audio_path' is empty: the reply row has no audio",
        ),
        ({"response_audio_path": "wav/none.mp3"}, "metadata.jsonl:1: field 'response_audio_path' names 'wav/none.mp3'"),
        ({"response_audio_path": "broken.mp3"}, "metadata.jsonl:1: field 'response_audio_path': cannot read audio"),
        ({"ability": "singing/opera"}, "metadata.jsonl:1: field 'ability' must be one of VStyle's"),
    ],
)
def test_bad_vstyle_rows_name_file_and_line(tmp_path, capsys, bad, message):
    (tmp_path / "broken.mp3").write_bytes(b"ID3 this is not audio")
    metadata = write_jsonl(tmp_path / "metadata.jsonl", [vstyle_row(1, "instruction/emotion", 3, **bad)])
    code = main(
        [
            "--out",
            str(tmp_path / "o"),
            "--vstyle",
            str(metadata),
            "--vstyle-prompts",
            str(write_prompts(tmp_path)),
            "--vstyle-judge-url",
            "http://127.0.0.1:9",
            "--allow-no-key",
        ]
    )
    assert code == 1 and message in capsys.readouterr().out


def test_voicebench_main_py_outputs_reproduce_its_figures(tmp_path):
    checkout = write_checkout(tmp_path)
    sdqa = write_jsonl(
        tmp_path / "my-sd-qa-usa-audio.jsonl",
        [
            {"prompt": "Capital of France?", "reference": "Paris", "response": "right: Paris"},
            {"prompt": "Largest ocean?", "reference": "Pacific", "response": "the Atlantic"},
            {"prompt": "Legs of a spider?", "reference": "eight", "response": "right, 8"},
        ],
    )
    obqa = write_jsonl(
        tmp_path / "my-openbookqa-test-audio.jsonl",
        [
            {"prompt": "Which is a metal? A ... B ...", "reference": "B", "response": "I think it's B, because..."},
            {"prompt": "Which is a gas? A ... B ...", "reference": "A", "response": "The answer is: **C**"},
        ],
    )

    def votes(body):  # upstream's majority vote: 2 of 3 "yes" is correct
        return ["Yes", "yes", "No"] if "<candidate>right" in user_text(body) else ["No", "no", "Yes"]

    with chat_server(votes) as server:
        code = main(
            [
                "--out",
                str(tmp_path / "out"),
                "--allow-no-key",
                "--voicebench",
                f"sd-qa:{sdqa}",
                "--voicebench",
                f"openbookqa:{obqa}",
                "--voicebench-dir",
                str(checkout),
                "--voicebench-judge-url",
                server.url,
                "--voicebench-key-env",
                "WAVALIGN_TEST_UNSET_KEY",
            ]
        )
    assert code == 0
    figures = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert figures["eval/voicebench/sd-qa"] == pytest.approx(200 / 3)  # 2 of 3 judged correct
    assert figures["eval/voicebench/openbookqa"] == 50.0  # B right; C against A wrong; no guess needed
    assert figures["eval/voicebench/openbookqa/guess_rate"] == 0.0
    assert "eval/voicebench/overall" not in figures  # only with all nine leaderboard subsets
    items = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    assert [(r["subset"], r.get("score", 0.0)) for r in items] == [
        ("sd-qa", 1.0),
        ("sd-qa", 0.0),
        ("sd-qa", 1.0),
        ("openbookqa", 1.0),
        ("openbookqa", 0.0),
    ]
    assert items[1]["source"] == f"{sdqa}:2" and items[1]["n"] == 1.0


def test_voicebench_unknown_subset_and_missing_judge_are_refused(tmp_path, capsys):
    out = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "hi", "response": "hello"}])
    assert main(["--out", str(tmp_path / "o"), "--voicebench", f"sd-qb:{out}"]) == 1
    assert "VoiceBench needs 'subset', one of" in capsys.readouterr().out
    assert main(["--out", str(tmp_path / "o"), "--voicebench", f"commoneval:{out}"]) == 1
    assert "scored by its GPT judge: give --voicebench-judge-url" in capsys.readouterr().out
    noreply = write_jsonl(tmp_path / "y.jsonl", [{"prompt": "hi"}])
    assert main(["--out", str(tmp_path / "o"), "--voicebench", f"advbench:{noreply}"]) == 1
    assert "y.jsonl:1: field 'response' must be the model's reply text" in capsys.readouterr().out
