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
