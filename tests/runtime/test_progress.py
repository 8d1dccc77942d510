"""ProgressLines, alone with a hand-driven clock and on a real tiny world: preparation and encoding say how far
they are, so no stage of `wavalign fit` is silent for minutes."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from wavalign.runtime.progress import ProgressLines
from wavalign.world.extras import write_world_extras
from wavalign.world.prepare import prepare_world
from wavalign.world.settings import WorldSettings


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_lines_at_most_every_interval_and_at_the_end():
    clock, said = Clock(), []
    p = ProgressLines("job", 10, every_s=5.0, say=said.append, clock=clock)
    for _ in range(3):  # 3 items in 3 s: under the interval, nothing said
        clock.t += 1.0
        p.advance()
    assert said == []
    clock.t += 3.0  # 6 s in, 4 of 10 done: 6 s * 6/4 = 9 s left
    p.advance()
    assert said == ["job 4/10 (40%, 6 s, ~9 s left)"]
    clock.t += 1.0
    p.advance(5)  # 9/10 one second after the last line: quiet
    clock.t += 1.0
    p.advance()  # the last item is always said
    assert said[-1] == "job 10/10 (100%, 8 s)" and len(said) == 2 and p.lines == said


def test_empty_and_bad_totals():
    with pytest.raises(ValueError, match="total >= 0"):
        ProgressLines("x", -1)
    assert ProgressLines("x", 0, clock=Clock()).line(100.0) == "x 0/0 (100%, 0 s)"


def test_threads_count_every_item_once():
    said = []
    p = ProgressLines("t", 400, every_s=0.0, say=said.append)
    workers = [threading.Thread(target=lambda: [p.advance() for _ in range(100)]) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert p.done == 400 and len(said) == 400 and said[-1].startswith("t 400/400 (100%")


def test_tiny_world_says_its_progress(tmp_path: Path, capsys):
    tiny = WorldSettings(str(tmp_path / "w"), n_train=12, n_val=3, n_test=3, num_codes=8, max_fit_utterances=8)
    root = prepare_world(tiny)
    write_world_extras(root, profile_samples=4)
    out = capsys.readouterr().out
    n_audio = len(list((root / "audio").glob("*.wav")))
    assert re.search(rf"^world: synthesised {n_audio}/{n_audio} \(100%, \d+ s\)$", out, re.M), out
    assert re.search(r"^world: analysed 8/8 \(100%", out, re.M)  # the codebook's WORLD analysis, max_fit_utterances
    for split, n in (("train", 24), ("val", 6), ("test", 6)):  # a question and a reply per example
        assert re.search(rf"^world: encoded {split} {n}/{n} \(100%", out, re.M), split
