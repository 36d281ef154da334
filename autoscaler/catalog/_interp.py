"""Piecewise-linear curves through measured points, with the project's stated rules.

Rules (documented in docs/simulator-data.md):

* repeated measurements at the same x are reduced to their **median**;
* the curve must be non-decreasing (more tokens / a larger batch / a longer context / a bigger message never
  takes less time). Two ways, chosen per curve by the caller:

  - ``"drop"`` for steep curves (prefill vs tokens, decode vs batch) where a violation is a gross anomaly: a
    median lower than the running maximum of the medians before it is **left out** (listed in
    :attr:`Curve.dropped`) and the curve runs through the remaining points;
  - ``"isotonic"`` for nearly flat, noisy curves (decode vs context, transfer time vs message size): the
    least-squares non-decreasing fit (pool-adjacent-violators), which averages neighbours that disagree
    only by
    noise instead of keeping the upper envelope. Points the fit moves are listed in :attr:`Curve.dropped`
    with their measured value;
* between kept points: linear interpolation; beyond the last kept point: **linear continuation of the last two
  kept points** (an extrapolation, which profiles say so in their notes); below the first kept point either
  the
  same linear continuation of the first two points or holding the first value (the caller picks and says why);
  the result is never below zero.

Evaluation is scalar and uses :mod:`bisect` on Python floats: the digital twin calls these once per event,
where
NumPy's per-call overhead would dominate.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Curve", "median_by_x"]


def median_by_x(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Group ``(x, y)`` points by x and return ``(x, median y)`` sorted by x."""
    groups: dict[float, list[float]] = defaultdict(list)
    for x, y in points:
        groups[x].append(y)
    return [(x, statistics.median(groups[x])) for x in sorted(groups)]


@dataclass(frozen=True, slots=True)
class Curve:
    """A non-decreasing piecewise-linear curve through (median) measured points.

    Attributes:
        xs: kept x values, strictly increasing.
        ys: kept y values (medians), non-decreasing.
        dropped: ``(x, measured median y)`` of points left out (``"drop"``) or moved by the isotonic fit.
        hold_below: below ``xs[0]`` hold ``ys[0]`` instead of continuing the first segment's line.
    """

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    dropped: tuple[tuple[float, float], ...] = ()
    hold_below: bool = False

    @classmethod
    def from_medians(
        cls, medians: list[tuple[float, float]], *, hold_below: bool = False, monotone: str = "drop"
    ) -> Curve:
        """Build from ``(x, median y)`` sorted by x, made non-decreasing by ``monotone`` (see module doc)."""
        if not medians:
            raise ValueError("a curve needs at least one measured point")
        if monotone == "isotonic":
            fitted = _pava([y for _, y in medians])
            moved = tuple((x, y) for (x, y), f in zip(medians, fitted, strict=True) if f != y)
            return cls(
                xs=tuple(x for x, _ in medians), ys=tuple(fitted), dropped=moved, hold_below=hold_below
            )
        if monotone != "drop":
            raise ValueError(f"unknown monotone rule {monotone!r}")
        kept: list[tuple[float, float]] = []
        dropped: list[tuple[float, float]] = []
        for x, y in medians:
            if kept and y < kept[-1][1]:
                dropped.append((x, y))
            else:
                kept.append((x, y))
        return cls(
            xs=tuple(x for x, _ in kept),
            ys=tuple(y for _, y in kept),
            dropped=tuple(dropped),
            hold_below=hold_below,
        )

    @classmethod
    def from_points(
        cls, points: Iterable[tuple[float, float]], *, hold_below: bool = False, monotone: str = "drop"
    ) -> Curve:
        """Build from raw (possibly repeated) measurements: medians per x, then :meth:`from_medians`."""
        return cls.from_medians(median_by_x(points), hold_below=hold_below, monotone=monotone)

    @property
    def x_min(self) -> float:
        """Smallest kept x (below it the curve extrapolates)."""
        return self.xs[0]

    @property
    def x_max(self) -> float:
        """Largest kept x (above it the curve extrapolates)."""
        return self.xs[-1]

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        n = len(xs)
        if n == 1:
            return ys[0]
        if x <= xs[0]:
            if self.hold_below:
                return ys[0]
            i = 1
        elif x >= xs[-1]:
            i = n - 1
        else:
            i = bisect.bisect_right(xs, x)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return y if y > 0.0 else 0.0

    def without(self, index: int) -> Curve:
        """The same curve with kept point ``index`` removed (for leave-one-out validation)."""
        xs = self.xs[:index] + self.xs[index + 1 :]
        ys = self.ys[:index] + self.ys[index + 1 :]
        return Curve(xs=xs, ys=ys, dropped=self.dropped, hold_below=self.hold_below)


def _pava(ys: list[float]) -> list[float]:
    """Least-squares non-decreasing fit of ``ys`` (equal weights): pool adjacent violators."""
    blocks: list[list[float]] = []  # [sum, count]
    for y in ys:
        blocks.append([y, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out: list[float] = []
    for total, count in blocks:
        out.extend([total / count] * int(count))
    return out
