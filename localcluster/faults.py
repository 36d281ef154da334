"""Fault rules for :mod:`localcluster.faultproxy`, driven from tests through ``proxy.faults``.

Every rule matches on HTTP method (None = any) and a regular expression searched in the request path
(None = any). Rules apply before the request is forwarded, so a failed request changes nothing on the server.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Match:
    method: str | None
    path: re.Pattern[str] | None

    def hit(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or self.path.search(path) is not None
        )


@dataclass
class _Latency(_Match):
    seconds: float = 0.0


@dataclass
class _Error(_Match):
    status: int = 500
    remaining: int | None = None  # None: unlimited (fraction-based)
    fraction: float = 1.0
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class _Conflict(_Match):
    remaining: int | None = None


WRITE_METHODS = ("PUT", "PATCH")


class Faults:
    """The active fault rules; ``drop_watches`` is the proxy's way to end every open watch."""

    def __init__(self, drop_watches: Callable[[], int]) -> None:
        self._latency: list[_Latency] = []
        self._errors: list[_Error] = []
        self._conflicts: list[_Conflict] = []
        self._expire_watches = 0
        self._drop = drop_watches

    @staticmethod
    def _re(path: str | None) -> re.Pattern[str] | None:
        return re.compile(path) if path is not None else None

    def add_latency(self, seconds: float, *, method: str | None = None, path: str | None = None) -> None:
        """Delay matching requests by ``seconds`` before they are handled."""
        self._latency.append(_Latency(method, self._re(path), seconds))

    def fail_next(
        self, n: int = 1, *, status: int = 500, method: str | None = None, path: str | None = None
    ) -> None:
        """The next ``n`` matching requests answer ``status`` (a Status body) without side effects."""
        self._errors.append(_Error(method, self._re(path), status, remaining=n))

    def fail_fraction(
        self,
        fraction: float,
        *,
        status: int = 503,
        method: str | None = None,
        path: str | None = None,
        seed: int = 0,
    ) -> None:
        """A seeded ``fraction`` of matching requests fail with ``status`` until :meth:`clear`."""
        self._errors.append(_Error(method, self._re(path), status, None, fraction, random.Random(seed)))

    def conflict_storm(self, n: int | None = None, *, path: str | None = None) -> None:
        """The next ``n`` (None: all, until cleared) PUT/PATCH requests on matching paths get 409 Conflict."""
        self._conflicts.append(_Conflict(None, self._re(path), n))

    def expire_next_watch(self, n: int = 1) -> None:
        """The next ``n`` watch requests get an ERROR event with a 410 Expired Status, then end."""
        self._expire_watches += n

    def drop_watches(self) -> int:
        """End every open watch stream now (clients see a clean end of stream); returns how many."""
        return self._drop()

    def clear(self) -> None:
        self._latency.clear()
        self._errors.clear()
        self._conflicts.clear()
        self._expire_watches = 0

    # ---- used by the server -------------------------------------------------------------------------

    def latency_for(self, method: str, path: str) -> float:
        return sum(r.seconds for r in self._latency if r.hit(method, path))

    def error_for(self, method: str, path: str) -> int | None:
        for r in self._errors:
            if not r.hit(method, path):
                continue
            if r.remaining is not None:
                if r.remaining <= 0:
                    continue
                r.remaining -= 1
                return r.status
            if r.rng.random() < r.fraction:
                return r.status
        self._errors = [r for r in self._errors if r.remaining is None or r.remaining > 0]
        return None

    def conflict_for(self, method: str, path: str) -> bool:
        if method not in WRITE_METHODS:
            return False
        for r in self._conflicts:
            if r.hit(method, path) and (r.remaining is None or r.remaining > 0):
                if r.remaining is not None:
                    r.remaining -= 1
                return True
        return False

    def take_expired_watch(self) -> bool:
        if self._expire_watches > 0:
            self._expire_watches -= 1
            return True
        return False
