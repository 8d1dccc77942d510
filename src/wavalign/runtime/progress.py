"""ProgressLines: plain progress lines for long loops outside the Trainer (world preparation, encoding).

A progress bar needs a terminal; these are whole lines (at most one every `every_s` seconds, plus the last), so a
log file or a CI console shows them too and no stage of `python -m wavalign fit` is silent for minutes.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class ProgressLines:
    """`label done/total (pct%, elapsed, ~left)` on `say` as work advances; thread-safe (the synthesis uses threads)."""

    def __init__(
        self,
        label: str,
        total: int,
        every_s: float = 10.0,
        say: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total < 0 or every_s < 0:
            raise ValueError(f"ProgressLines needs total >= 0 and every_s >= 0, got {total}, {every_s}")
        self.label, self.total, self.every_s = label, total, every_s
        self.say = say or (lambda line: print(line, flush=True))
        self.clock = clock
        self.done = 0
        self.lines: list[str] = []  # what was said, for callers and tests
        self._start = self._last = clock()
        self._lock = threading.Lock()

    def advance(self, n: int = 1) -> None:
        """Count n more items done; say a line when `every_s` has passed since the last one, or when all are done."""
        with self._lock:
            self.done += n
            now = self.clock()
            finished = self.done >= self.total
            if not finished and now - self._last < self.every_s:
                return
            self._last = now
            self._emit(self.line(now))

    def line(self, now: float) -> str:
        elapsed = now - self._start
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.label} {self.done}/{self.total} ({pct:.0f}%, {elapsed:.0f} s"
        if 0 < self.done < self.total:
            text += f", ~{elapsed * (self.total - self.done) / self.done:.0f} s left"
        return text + ")"

    def _emit(self, line: str) -> None:
        self.lines.append(line)
        self.say(line)
