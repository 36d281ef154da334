"""PromQL built as plain data, and Prometheus's ``histogram_quantile`` re-stated in Python.

Pure functions, no I/O: the metrics source composes queries here and only sends them.

Escaping. Every value that comes from a custom resource (namespace, pool and pod names, label values) goes
through :func:`string_literal` before it reaches PromQL, and through :func:`regex_literal` first when it sits
inside a ``=~`` matcher. Label *names* and metric names cannot be quoted in PromQL 2.x, so they are validated
against Prometheus's grammar instead (:func:`check_label_name`, :func:`check_metric_name`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from autoscaler.errors import InputError

__all__ = [
    "bucket_quantile",
    "check_label_name",
    "check_metric_name",
    "name_matcher",
    "regex_alternation",
    "regex_literal",
    "string_literal",
]

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_RE2_META = frozenset("\\.+*?()|[]{}^$")


def check_label_name(name: str, *, field: str = "labelOverrides") -> str:
    """Return ``name`` if it is a valid Prometheus label name, else raise :class:`InputError`."""
    if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
        raise InputError(
            f"{name!r} is not a label name; expected [a-zA-Z_][a-zA-Z0-9_]* not starting with '__'",
            source=f"spec.metrics.{field}",
        )
    return name


def check_metric_name(name: str, *, field: str = "metricOverrides") -> str:
    """Return ``name`` if it is a valid Prometheus metric name, else raise :class:`InputError`."""
    if not _METRIC_NAME.fullmatch(name):
        raise InputError(
            f"{name!r} is not a metric name; expected [a-zA-Z_:][a-zA-Z0-9_:]*",
            source=f"spec.metrics.{field}",
        )
    return name


def string_literal(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal.

    PromQL unquotes string literals with Go's rules; escaping backslash, the double quote and every control
    character (``\\n``, ``\\t``, ``\\xNN`` for the rest) makes any Unicode string round-trip exactly.

    Raises:
        InputError: ``value`` holds a lone surrogate, which cannot be sent as UTF-8.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"label value {value!r} is not valid Unicode text") from None
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def regex_literal(value: str) -> str:
    """``value`` as an RE2 pattern that matches exactly ``value`` (before string quoting).

    Escapes exactly the characters Go's ``regexp.QuoteMeta`` escapes (``\\.+*?()|[]{}^$``); every other
    character, control characters included, is a literal in RE2. Keeping plain names plain lets Prometheus
    resolve an alternation of literals as a set lookup.
    """
    return "".join("\\" + ch if ch in _RE2_META else ch for ch in value)


def regex_alternation(values: Iterable[str]) -> str:
    """An RE2 alternation matching exactly one of ``values`` (sorted, deduplicated, each escaped)."""
    return "|".join(regex_literal(v) for v in sorted(set(values)))


def name_matcher(names: Sequence[str]) -> str:
    """``__name__`` matcher for several metric names: ``__name__=~"a|b"`` (literal alternation, which
    Prometheus resolves as an exact set lookup, not a scan)."""
    for n in names:
        check_metric_name(n)
    if len(names) == 1:
        return f"__name__={string_literal(names[0])}"
    return f"__name__=~{string_literal(regex_alternation(names))}"


def bucket_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus's ``histogram_quantile`` (2.x, classic buckets) for one histogram.

    Args:
        q: quantile in [0, 1].
        buckets: ``(upper bound, cumulative count or rate)`` pairs, any order; the ``+Inf`` bucket must be
            present.

    Returns:
        The estimate, seconds for latency histograms: linear interpolation inside the bucket holding rank
        ``q × total``; the lower bound of the first bucket is 0 (or the bound itself if it is ≤ 0); if the
        rank falls in the ``+Inf`` bucket the highest finite bound is returned. NaN when there is no ``+Inf``
        bucket, fewer than two buckets, or no observations. Buckets with equal bounds are merged and
        non-monotonic cumulative counts are raised to the running maximum, exactly as Prometheus does.
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
            merged.append([bound, count])
    running = -math.inf
    for b in merged:
        if b[1] > running:
            running = b[1]
        elif b[1] < running:
            b[1] = running
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0 or math.isnan(observations):
        return math.nan
    rank = q * observations
    # First bucket (excluding +Inf) whose cumulative count reaches the rank.
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
