"""hypothesis fuzzing of the parsers that read outside input: whatever a JSONL file or a judge's reply holds, the
result is a parsed value or our own error naming the place, never an unhandled exception."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wavalign.data.check import check_file
from wavalign.data.schema import SchemaError, load_jsonl
from wavalign.judges.http import parse_score

pytestmark = pytest.mark.fuzz
FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)  # the same cases in CI every time

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
keys = st.sampled_from(
    [
        "messages",
        "prompt",
        "reply",
        "sft_target_text",
        "audios",
        "audio_codes",
        "prompt_speech",
        "reply_speech",
        "sft_target_codes",
        "sft_target_audio",
        "style",
        "question_text",
        "role",
        "content",
    ]
)
rows = st.dictionaries(keys, json_values, max_size=6) | st.builds(
    lambda prompt, reply, extra: {"prompt": prompt, "reply": reply, **extra},
    st.text(max_size=20),
    st.text(max_size=20),
    st.dictionaries(keys, json_values, max_size=2),
)
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "system", "assistant"]),
            "content": st.sampled_from(["<|audio|>", "hi", "", "<|audio|> and <|audio|>"]),
        }
    ),
    min_size=1,
    max_size=3,
)
reference_rows = st.builds(
    lambda m, extra: {"messages": m, **extra},
    messages,
    st.dictionaries(keys.filter(lambda k: k != "messages"), json_values, max_size=5),
)
lines = st.lists((rows | reference_rows).map(json.dumps) | st.text(max_size=30), min_size=1, max_size=5)


@FUZZ
@given(lines)
def test_jsonl_reader_parses_or_raises_schema_error_naming_the_line(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.jsonl"
        path.write_text("\n".join(content) + "\n", encoding="utf-8")
        try:
            examples = load_jsonl(path)
        except SchemaError as e:
            assert str(path) in str(e)
        else:
            assert examples and all(ex.source.startswith(f"{path}:") for ex in examples)
        report = check_file(path, decode_audio=False, num_speech_tokens=64)  # never raises, whatever the lines
        assert report.ok == (report.problems == [])


@FUZZ
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=4))
def test_any_bytes_give_examples_or_a_schema_error(chunks):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.jsonl"
        path.write_bytes(b"\n".join(chunks) + b"\n")
        try:
            load_jsonl(path)
        except SchemaError as e:
            assert str(path) in str(e)
        assert isinstance(check_file(path, decode_audio=False).problems, list)


@FUZZ
@given(
    st.text(max_size=200)
    | st.builds(
        lambda a, b, c: f"{a}<score>{b}</score>{c}", st.text(max_size=20), st.text(max_size=10), st.text(max_size=20)
    )
)
def test_judge_reply_parser_returns_a_score_in_range_or_none(reply):
    score = parse_score(reply)
    assert score is None or (isinstance(score, float) and math.isfinite(score) and 1.0 <= score <= 5.0)


# ---- rows that could crash a run: whatever passes the checks can be trained on -------------------------------------
AUDIO_FILES = ("ok.wav", "nan.wav", "inf.wav", "corrupt.wav", "blip.wav")


def _write_audio(folder: Path) -> None:
    import numpy as np
    import soundfile as sf

    tone = (0.1 * np.sin(np.arange(8000) / 10)).astype(np.float32)
    sf.write(folder / "ok.wav", tone, 16000)
    sf.write(folder / "nan.wav", np.where(np.arange(8000) == 4000, np.nan, tone).astype(np.float32), 16000, "FLOAT")
    sf.write(folder / "inf.wav", np.full(8000, np.inf, dtype=np.float32), 16000, "FLOAT")
    sf.write(folder / "blip.wav", tone[:100], 16000)  # 6 ms: too short
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt not audio")


words = st.sampled_from([0, 1, 7, 900, 2100, 4500]).map(lambda n: "four " * n)  # 2100 words: over the context
codes = st.lists(st.integers(0, 70), max_size=12) | st.integers(0, 2500).map(lambda n: [3] * n)
risky_rows = st.builds(
    lambda reply, speech, prompt: {
        "prompt": "<|audio|>",
        "prompt_speech": [prompt],
        "reply": reply,
        "reply_speech": speech,
    },
    words,
    codes,
    codes,
) | st.builds(
    lambda audio, with_codes, text: {
        "messages": [{"role": "user", "content": "<|audio|>"}],
        "audios": [audio],
        "sft_target_text": text,
        **({"audio_codes": [[1, 2, 3]]} if with_codes else {}),
    },
    st.sampled_from(AUDIO_FILES),
    st.booleans(),
    words,
)
_POLICY: list = []


def _surely_fatal(row: dict, with_codec: bool) -> bool:
    """Bad audio, a code outside the 64, audio without codes or codec, or one part alone longer than the context."""
    text = row.get("reply", row.get("sft_target_text", ""))
    code_lists = [*row.get("prompt_speech", []), row.get("reply_speech", [])]
    if len(text.split()) >= 2100 or any(len(c) >= 2100 or any(v >= 64 for v in c) for c in code_lists):
        return True
    if "audios" not in row:
        return False
    return row["audios"][0] != "ok.wav" or ("audio_codes" not in row and not with_codec)


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(st.lists(risky_rows, min_size=1, max_size=4), st.booleans())
def test_a_row_that_passes_every_check_builds_and_fits_the_context(rows, with_codec):
    """check_file (decoding audio) plus fit's start-up row checks either name a row's file:line, or the row's prompt
    and demonstration build without error and prompt + the longer of reply and max_new_tokens fit the context."""
    from callbacks.toys import ToyCodec
    from conftest import tiny_policy

    from wavalign.data.row_limits import row_prompt, row_reply, rows_problems
    from wavalign.data.speech import SpeechTokenCache

    policy = _POLICY[0] if _POLICY else _POLICY.append(tiny_policy()) or _POLICY[0]
    speech = SpeechTokenCache(ToyCodec() if with_codec else None)
    with tempfile.TemporaryDirectory() as tmp:
        _write_audio(Path(tmp))
        path = Path(tmp) / "data.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        report = check_file(path, decode_audio=True, num_speech_tokens=64)
        failed = {p.split(": ", 1)[0] for p in report.problems}
        examples = [ex for ex in report.parsed[path] if ex.source not in failed]
        problems = report.problems + rows_problems(examples, policy, speech, None, 32)
        assert all(p.startswith(f"{path}:") for p in problems), problems
        refused = {p.split(": ", 1)[0] for p in problems}
        for line, row in enumerate(rows, start=1):  # what is surely fatal is refused, whatever else the row holds
            assert f"{path}:{line}" in refused or not _surely_fatal(row, with_codec), (row, problems)
        for ex in report.parsed[path]:
            if ex.source in refused:
                continue
            prompt, reply = row_prompt(policy, speech, ex), row_reply(policy, speech, ex)
            assert len(prompt) + max(len(reply), 32) <= 2048
