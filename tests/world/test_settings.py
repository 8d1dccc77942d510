"""WorldSettings is the one description of the world: the prepare command's options, the `world:` key's help and
prepare_world's argument come from it, bad values are refused by field name, and the manifest (the cache key) of a
given world is what it was before the settings were a dataclass."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from wavalign.world.prepare import manifest_settings
from wavalign.world.settings import WorldSettings, add_options, field_help, from_options


def test_every_field_has_a_sentence_of_help() -> None:
    helps = field_help()
    assert set(helps) == {f.name for f in dataclasses.fields(WorldSettings)}
    assert all(text.endswith(".") and len(text) > 15 for text in helps.values()), helps
    assert helps["max_fit_utterances"].startswith("Training utterances")  # a wrapped line is joined, not cut


def test_options_are_the_fields_with_their_defaults_and_old_names() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser)
    assert from_options(parser.parse_args([])) == WorldSettings()
    old = parser.parse_args(["--out", "w", "--train", "7", "--val", "2", "--test", "1", "--heard", "3"])
    new = parser.parse_args(["--dir", "w", "--n-train", "7", "--n-val", "2", "--n-test", "1", "--n-heard", "3"])
    assert from_options(old) == from_options(new) == WorldSettings("w", n_train=7, n_val=2, n_test=1, n_heard=3)
    assert isinstance(from_options(parser.parse_args(["--frame-ms", "20"])).frame_ms, float)
    assert "Codec codebook size" in parser.format_help()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"n_val": -1}, "n_val"),
        ({"num_codes": 1}, "num_codes"),
        ({"frame_ms": 0.0}, "frame_ms"),
        ({"workers": 0}, "workers"),
        ({"teacher_wrong_style": 1.5}, "teacher_wrong_style"),
        ({"n_heard": -2}, "n_heard"),
    ],
)
def test_bad_values_name_their_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"world setting {field} "):
        WorldSettings(**change).check()
    WorldSettings().check()


def test_from_mapping_takes_parsed_values_and_refuses_unknown_keys() -> None:
    assert WorldSettings.from_mapping({"dir": "x", "n_heard": 2}) == WorldSettings("x", n_heard=2)
    with pytest.raises(ValueError, match="n_tain"):
        WorldSettings.from_mapping({"n_tain": 3})


def test_the_default_worlds_manifest_is_unchanged() -> None:
    """manifest.json's settings decide whether .cache/world is reused: a default world prepared before WorldSettings
    existed must still match (written out by hand, not computed)."""
    got = manifest_settings(WorldSettings(dir="anywhere", workers=7))  # neither folder nor workers is recorded
    got.pop("styles"), got.pop("tts")  # the style table and espeak-ng's version: code and system, not settings
    assert got == {
        "world_version": 2,
        "seed": 0,
        "counts": {"train": 1500, "val": 150, "test": 150},
        "num_codes": 256,
        "frame_ms": 40.0,
        "sample_rate": 16000,
        "max_fit_utterances": 600,
    }
    knobs = manifest_settings(WorldSettings(teacher_wrong_answer=0.3, teacher_wrong_style=0.2, n_heard=150))
    assert knobs["teacher"] == {"wrong_answer": 0.3, "wrong_style": 0.2} and knobs["heard"]["examples"] == 150
