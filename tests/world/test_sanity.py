"""The world's EQ and WER can see speech damage: degraded copies of the demonstrations score clearly worse."""

from __future__ import annotations

from pathlib import Path

import pytest

from wavalign.world.extras import write_world_extras
from wavalign.world.prepare import prepare_world
from wavalign.world.sanity import DEGRADATIONS, format_markdown, sanity_table
from wavalign.world.settings import WorldSettings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = prepare_world(
        WorldSettings(
            str(tmp_path_factory.mktemp("sanity_world")),
            n_train=24,
            n_val=6,
            n_test=1,
            num_codes=64,
            max_fit_utterances=48,
        ),
        verbose=False,
    )
    write_world_extras(root, profile_samples=24)
    return root


def test_degraded_speech_scores_worse_than_the_demonstrations(world: Path) -> None:
    rows = {r.reply: r for r in sanity_table(world, "val", n=6)}
    assert list(rows) == list(DEGRADATIONS) and all(r.n == 6 for r in rows.values())
    demo = rows["demonstration"]
    assert demo.wer < 0.4 and demo.eq > 2.5  # the codec round trip keeps the demonstrations recognisable and styled
    for kind in ("shuffled codes", "random codes"):  # broken speech: the ASR hears (almost) none of the text
        assert rows[kind].wer > demo.wer + 0.5, kind
        assert rows[kind].eq < demo.eq, kind
    assert rows["wrong style"].eq < demo.eq - 1.0  # intelligible, but in the wrong style
    table = format_markdown(list(rows.values()), "val")
    assert table.count("\n") == 1 + len(DEGRADATIONS) and "| random codes |" in table


def test_sanity_script_writes_the_table(world: Path, tmp_path: Path, root: Path) -> None:
    import runpy

    script = runpy.run_path(str(root / "scripts" / "sanity_degraded.py"))
    out = tmp_path / "sanity.md"
    assert script["main"](["--world", str(world), "--n", "2", "--out", str(out)]) == 0
    assert "| demonstration |" in out.read_text()
    assert script["main"](["--world", str(tmp_path / "missing")]) == 2
