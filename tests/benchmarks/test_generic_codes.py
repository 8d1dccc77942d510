"""Pre-tokenized question audio in a generic benchmark file: read into the prompt, checked, refused when wrong."""

import json
from types import SimpleNamespace

import pytest

from wavalign.benchmarks.base import BenchmarkError
from wavalign.benchmarks.generic import load_generic
from wavalign.callbacks.benchmark import check_item_codes


def write(tmp_path, rows):
    (tmp_path / "q.wav").write_bytes(b"")  # the path must exist; its samples are not read when codes are given
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_codes_become_the_prompt_speech(tmp_path):
    path = write(
        tmp_path, [{"question": "what is one plus one", "audio": "q.wav", "answer": "two", "audio_codes": [3, 1]}]
    )
    (item,) = load_generic(path, "b")
    ex = item.as_example()
    assert item.audio_codes == (3, 1) and ex.prompt_speech == [[3, 1]] and ex.audios == [tmp_path / "q.wav"]
    check_item_codes({"b": [item]}, 4)
    with pytest.raises(ValueError, match=r"bench\.jsonl:1: audio_codes: code 3 outside the policy's 3 speech"):
        check_item_codes({"b": [item]}, 3)
    (plain,) = load_generic(write(tmp_path, [{"question": "q", "audio": "q.wav", "answer": "a"}]), "b")
    assert plain.as_example().prompt_speech is None  # no codes: encoded from the file as before


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q", "answer": "a", "audio_codes": [1]}, "needs the field 'audio'"),
        ({"question": "q", "audio": "q.wav", "answer": "a", "audio_codes": [1, -2]}, "non-negative integer codes"),
        ({"question": "q", "audio": "q.wav", "answer": "a", "audio_codes": "1 2"}, "non-negative integer codes"),
    ],
)
def test_bad_codes_name_the_line(tmp_path, row, message):
    with pytest.raises(BenchmarkError, match=rf"bench\.jsonl:1: .*{message}"):
        load_generic(write(tmp_path, [row]), "b")


def test_no_policy_size_checks_nothing():
    check_item_codes({"b": [SimpleNamespace(audio_codes=(99,), source="x:1")]}, None)
