"""Progress lines of long runs (``bench``): counts, elapsed time and the ETA at the mean pace so far."""

from __future__ import annotations

import io

import pytest

from autoscaler.sim.progress import Progress, clock_text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (59.4, "0:59"), (61, "1:01"), (3600, "1:00:00"),
                                               (3725, "1:02:05"), (-3, "0:00")])
def test_clock_text(seconds: float, text: str) -> None:
    assert clock_text(seconds) == text


def test_lines_count_up_and_the_eta_follows_the_mean_pace() -> None:
    now = [100.0]
    out = io.StringIO()
    progress = Progress(4, stream=out, clock=lambda: now[0])
    assert progress.eta_s() is None
    now[0] = 110.0
    assert progress.done("a") == "[1/4] a · 0:10 elapsed, ETA 0:30"
    now[0] = 130.0
    assert progress.done("b") == "[2/4] b · 0:30 elapsed, ETA 0:30"
    progress.done("c")
    now[0] = 160.0
    assert progress.done("d") == "[4/4] d · 1:00 elapsed, done"
    assert out.getvalue().count("\n") == 4


def test_no_stream_still_counts() -> None:
    progress = Progress(2, stream=None)
    progress.done("x")
    assert progress.finished == 1
