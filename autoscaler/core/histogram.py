"""Prometheus's ``histogram_quantile`` re-stated in Python, shared by the twin's signals and the Prometheus
adapter (which sums bucket rates over a role's fresh pods itself)."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["histogram_quantile"]


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Prometheus's ``histogram_quantile`` (2.x, classic buckets) for one histogram.

    Args:
        q: quantile in [0, 1].
        buckets: ``(upper bound, cumulative count or rate)`` pairs, any order; the ``+Inf`` bucket must be
            present.

    Returns:
        The estimate, in the unit of the bounds (seconds for latency histograms): linear interpolation inside
        the bucket holding rank ``q × total``; the lower bound of the first bucket is 0 (or the bound itself
        if it is ≤ 0); if the rank falls in the ``+Inf`` bucket the highest finite bound is returned. NaN when
        there is no ``+Inf`` bucket, fewer than two buckets, or no observations; −Inf for ``q < 0`` and +Inf
        for ``q > 1``. Buckets with equal bounds are merged and non-monotonic cumulative counts (rates of
        separate series) are raised to the running maximum, exactly as Prometheus does.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered or not math.isinf(ordered[-1][0]) or ordered[-1][0] < 0:
        return math.nan
    merged: list[list[float]] = []
    for bound, count in ordered:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([float(bound), float(count)])
    running = -math.inf
    for b in merged:
        if b[1] > running:
            running = b[1]
        elif b[1] < running:
            b[1] = running
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if not observations > 0:
        return math.nan
    rank = q * observations
    # the first bucket (the +Inf one excluded) whose cumulative count reaches the rank
    idx = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if idx == len(merged) - 1:
        return merged[-2][0]
    if idx == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start = 0.0
    end = merged[idx][0]
    count = merged[idx][1]
    if idx > 0:
        start = merged[idx - 1][0]
        count -= merged[idx - 1][1]
        rank -= merged[idx - 1][1]
    return start + (end - start) * (rank / count)
