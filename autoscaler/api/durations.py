"""Kubernetes-style duration strings (``500ms``, ``15s``, ``2m``, ``1h30m``) and decimal money strings."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

__all__ = ["DURATION_PATTERN", "MONEY_PATTERN", "Duration", "Money", "parse_duration"]

#: Go ``time.ParseDuration`` syntax restricted to non-negative values, as Kubernetes ``metav1.Duration`` uses.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
#: A non-negative decimal amount with at most 4 fractional digits, e.g. ``"4.00"`` (currency per hour).
MONEY_PATTERN = r"^[0-9]{1,9}(\.[0-9]{1,4})?$"

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_WHOLE = re.compile(DURATION_PATTERN)

Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
Money = Annotated[str, StringConstraints(pattern=MONEY_PATTERN, max_length=16)]


def parse_duration(text: str) -> float:
    """Seconds in a duration string such as ``"1m30s"`` or ``"500ms"``.

    Raises:
        ValueError: when ``text`` is not a non-negative Go-style duration.
    """
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"expected a duration such as '500ms', '15s' or '2m', got {text!r}")
    return sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest readable duration string for ``seconds`` (``90`` → ``"1m30s"``, ``0.5`` → ``"500ms"``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"
