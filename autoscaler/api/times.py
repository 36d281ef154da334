"""Kubernetes timestamps on the wire: ``metav1.Time`` and ``metav1.MicroTime`` (RFC 3339, UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_rfc3339", "rfc3339", "rfc3339_micro"]


def rfc3339(ts: float) -> str:
    """Unix seconds as RFC 3339 with second precision (``metav1.Time``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(ts: float) -> str:
    """Unix seconds as RFC 3339 with microseconds (``metav1.MicroTime``)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    """Unix seconds of an RFC 3339 timestamp (with or without fractional seconds)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
