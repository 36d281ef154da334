"""PromQL built as plain data (Prometheus's ``histogram_quantile`` is :mod:`autoscaler.core.histogram`).

Pure functions, no I/O: the metrics source composes queries here and only sends them.

Escaping. Every value that comes from a custom resource (namespace, pool and pod names, label values) goes
through :func:`string_literal` before it reaches PromQL, and through :func:`regex_literal` first when it sits
inside a ``=~`` matcher. Label *names* and metric names cannot be quoted in PromQL 2.x, so they are validated
against Prometheus's grammar instead (:func:`check_label_name`, :func:`check_metric_name`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from autoscaler.errors import InputError

__all__ = [
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
