"""Progress lines for long benchmark runs: one line per finished item, with the count done and an ETA.

The ETA assumes the remaining items take, on average, as long as the finished ones did (wall time per item so
far); it is printed as ``m:ss`` and is only an estimate, since items of a grid differ in length.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def clock_text(seconds: float) -> str:
    """``seconds`` as ``m:ss`` (or ``h:mm:ss`` from an hour)."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Counts finished items of ``total`` and prints a line for each to ``stream`` (stderr by default).

    Args:
        total: how many items the run has.
        stream: where lines go; None disables printing (``done`` still counts).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, total: int, stream: TextIO | None = sys.stderr,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.finished = 0
        self._stream = stream
        self._clock = clock
        self._start = clock()

    def eta_s(self) -> float | None:
        """Seconds left at the mean pace so far; None before the first item finishes."""
        if self.finished == 0:
            return None
        elapsed = self._clock() - self._start
        return elapsed / self.finished * (self.total - self.finished)

    def done(self, what: str) -> str:
        """Record one finished item described by ``what``; returns (and prints) the progress line."""
        self.finished += 1
        elapsed = self._clock() - self._start
        eta = self.eta_s()
        left = "done" if self.finished >= self.total else f"ETA {clock_text(eta or 0.0)}"
        width = len(str(self.total))
        line = f"[{self.finished:>{width}}/{self.total}] {what} · {clock_text(elapsed)} elapsed, {left}"
        if self._stream is not None:
            print(line, file=self._stream, flush=True)
        return line
