"""The official evaluators' LLM judges against a real loopback chat-completions server. Expected values derived by
hand from MatthewCYM/VoiceBench api_judge.py (its prompts filled by replacement, the system message, n=3 sampling;
the prompts here are the miniature checkout's of tests/voicebench_checkout.py) + src/evaluator/open.py (float or
[[n]], mean) + src/evaluator/qa.py (majority_vote), and alibaba/vstyle lalm_eval/gemini_eval.py (construct_prompt,
parse_score)."""

from __future__ import annotations

import numpy as np
import pytest
from chat_server import chat_server, user_text, write_prompts
from voicebench_checkout import write_checkout

from wavalign.benchmarks.official_judges import VoiceBenchJudge, VStyleJudge, bracket_score, majority_yes, open_rating
from wavalign.benchmarks.voicebench_source import ENV_VAR
from wavalign.judges.http import JudgeConfigError

KEY = dict(allow_no_key=True, api_key_env="", backoff_s=0.0, max_retries=2)


@pytest.fixture(scope="module")
def vb(tmp_path_factory) -> dict[str, str]:
    """VoiceBenchJudge's keyword arguments: the test settings and a miniature VoiceBench checkout."""
    return dict(KEY, voicebench_dir=str(write_checkout(tmp_path_factory.mktemp("vb"))))


def test_parsers():
    assert open_rating("4") == 4.0 and open_rating("Score: [[5]] overall") == 5.0 and open_rating("good") is None
    assert majority_yes(["Yes", "no", "YES"]) and not majority_yes(["yes", "No", "no"])
    assert not majority_yes(["yes", "Yes.", "maybe"])  # a three-way tie: not counted as correct
    assert bracket_score("Step 1 ... [[1]] skipped. Final: [[4]]") == 4.0  # the last [[x]] that is a number
    assert bracket_score("[[4]] then [[n/a]]") == 4.0 and bracket_score(" 3 ") == 3.0 and bracket_score("none") is None


def test_voicebench_open_scores_use_the_checkouts_prompt_and_upstreams_sampling(vb):
    def answer(body):
        text = user_text(body)
        if "How do I boil an egg?" in text:
            return ["4", "[[5]]", "3"]  # -> (4 + 5 + 3) / 3
        if "fail me" in text:
            return ["excellent"]  # one sample, unparsable: retried, then the item fails
        return ["2", "2", "2"]

    with chat_server(answer) as server:
        judge = VoiceBenchJudge(server.url, **vb)
        got = judge.open_scores([("How do I boil an egg?", "Boil it for nine minutes."), ("fail me", "x"), ("q", "r")])
    assert got == [pytest.approx(4.0), None, 2.0]
    body = server.requests[0]
    assert body["model"] == "gpt-4o-mini" and body["n"] == 3 and body["temperature"] == 0.5 and body["top_p"] == 0.95
    assert body["max_tokens"] == 1024
    assert body["messages"][0] == {"role": "system", "content": "Be a fair grader."}  # the checkout's system message
    text = [user_text(b) for b in server.requests if "boil" in user_text(b)][0]
    assert text == "\nRate this reply from 1 to 5.\n[Q] How do I boil an egg?\n[A] Boil it for nine minutes.\n"
    assert sum("fail me" in user_text(b) for b in server.requests) == 3  # 1 try + max_retries 2


def test_voicebench_judge_tops_up_samples_from_a_server_that_ignores_n(vb):
    with chat_server(lambda body: ["4"]) as server:  # one choice whatever n says
        assert VoiceBenchJudge(server.url, **vb).open_scores([("q", "r")]) == [4.0]
    assert [b["n"] for b in server.requests] == [3, 2, 1]


def test_voicebench_sd_qa_votes(vb):
    def answer(body):
        text = user_text(body)
        return ["Yes", "No", "yes"] if "eight" in text else ["No", "no", "Yes"]

    with chat_server(answer) as server:
        judge = VoiceBenchJudge(server.url, **vb)
        got = judge.qa_correct(
            [("How many legs does a spider have?", "eight", "8 legs"), ("Capital of France?", "Paris", "Lyon")]
        )
    assert got == [True, False]  # '8 legs' vs 'eight': the vote, not word containment, decides
    text = user_text(server.requests[0]) if "eight" in user_text(server.requests[0]) else user_text(server.requests[1])
    assert text == (
        "<question>How many legs does a spider have?</question>\n<gold>eight</gold>\n"
        "<candidate>8 legs</candidate>\nSay Yes or No."
    )


def test_voicebench_judge_retries_http_errors_then_fails_the_item(vb, monkeypatch):
    with chat_server(lambda body: 503) as server:
        assert VoiceBenchJudge(server.url, **vb).qa_correct([("q", "r", "a")]) == [None]
    assert len(server.requests) == 3
    with pytest.raises(JudgeConfigError, match="WAVALIGN_NO_SUCH_KEY"):
        VoiceBenchJudge("http://127.0.0.1:9", api_key_env="WAVALIGN_NO_SUCH_KEY", voicebench_dir=vb["voicebench_dir"])
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(
        JudgeConfigError, match=f"VoiceBenchJudge .*git clone https://github.com/MatthewCYM/.*{ENV_VAR}"
    ):
        VoiceBenchJudge("http://127.0.0.1:9", **KEY)  # no checkout: its prompts are upstream's, not shipped


def test_vstyle_judge_fills_the_category_prompt_and_parses_double_brackets(tmp_path):
    wav = np.zeros(1600, dtype=np.float32)

    def answer(body):
        parts = body["messages"][0]["content"]
        assert [p["type"] for p in parts] == ["text", "input_audio"]  # prompt, then the reply audio
        return ["Step 3: [[2]] would apply if... Final rating: [[4]]"] if "[empathy]" in parts[0]["text"] else ["[[3]]"]

    with chat_server(answer) as server:
        judge = VStyleJudge(server.url, "gemini-2.5-pro", str(write_prompts(tmp_path)), **KEY)
        items = [
            {
                "ability": "empathy/anger",
                "instruction": "My flight got cancelled!",
                "reply_audio": wav,
                "sample_rate": 16000,
            },
            {
                "ability": "role_play/scenario",
                "instruction": "Play a pirate.",
                "reply_audio": wav,
                "sample_rate": 16000,
            },
            {"ability": "instruction/style", "instruction": "Whisper.", "reply_audio": None, "sample_rate": 16000},
        ]
        assert judge.scores(items) == [4.0, 3.0, None]  # no reply audio: not judged, as upstream refuses it
    texts = sorted(b["messages"][0]["content"][0]["text"] for b in server.requests)
    assert texts == [
        "[empathy] Type: empathy/anger\nInstruction: My flight got cancelled!\n",
        "[role_play] Type: role_play/scenario\nInstruction: Play a pirate.\n",
    ]


def test_vstyle_judge_needs_the_four_prompt_files(tmp_path):
    (tmp_path / "empathy.txt").write_text("x")
    with pytest.raises(
        JudgeConfigError, match=r"lacks \['acoustic_attributes.txt', 'instruction.txt', 'role_play.txt'\]"
    ):
        VStyleJudge("http://127.0.0.1:9", "m", str(tmp_path), **KEY)
