"""Our own ``/scale`` writes that a workload cache may not hold yet, tracked with opaque resourceVersions.

After the controller patches a workload's ``/scale``, the next tick may come before the watch delivers that
version; reading the cache then would show the old replica count, which the reconciler would take for a manual
change. So the written count stands in for the cached one until the cache has caught up with the write: the
watch delivered the version the write made (watch events arrive in order, so whatever is cached after it is
newer), the cache was listed again by a list started after the write, or a minute passed.

resourceVersions are compared only for equality: the API promises nothing else (not that they are numbers, let
alone ordered ones).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PendingScales", "resource_version"]

Key = tuple[str, str, str]  # namespace, kind, name
STAND_IN_S = 60.0  # the longest a written count stands in for the cached one, seconds
_REMEMBERED = 16  # delivered versions remembered per workload


def resource_version(obj: Mapping[str, Any] | None) -> str:
    """An object's resourceVersion: an opaque string ("" when absent)."""
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class _Pending:
    replicas: int
    resource_version: str
    list_epoch: int
    until: float


class PendingScales:
    """The replica counts we wrote that the caches have not shown yet, per ``(namespace, kind, name)``."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._pending: dict[Key, _Pending] = {}
        self._delivered: dict[Key, collections.deque[str]] = {}

    def wrote(self, key: Key, replicas: int, rv: str, list_epoch: int) -> None:
        """We set ``replicas``; the reply carried ``rv``; ``list_epoch`` is the cache's list mark at that moment."""
        if not rv or rv in self._delivered.get(key, ()):
            # The watch already delivered the version this write made (it can beat the reply here), or the write
            # changed nothing: the cache is at or past it.
            self._pending.pop(key, None)
            return
        self._pending[key] = _Pending(replicas, rv, list_epoch, self.monotonic() + STAND_IN_S)

    def observed(self, kind: str, obj: Mapping[str, Any]) -> None:
        """An informer handler: the watch (or a list) delivered ``obj``."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(obj.get("kind", "")), str(meta.get("name", "")))
        if kind == "DELETED":
            self._delivered.pop(key, None)
            self._pending.pop(key, None)
            return
        rv = resource_version(obj)
        self._delivered.setdefault(key, collections.deque(maxlen=_REMEMBERED)).append(rv)
        pending = self._pending.get(key)
        if pending is not None and rv == pending.resource_version:
            del self._pending[key]

    def replicas(self, key: Key, cached_rv: str, relisted_since: Callable[[int], bool]) -> int | None:
        """The count we wrote, while the cache (at ``cached_rv``) has not caught up with it; else None."""
        pending = self._pending.get(key)
        if pending is None:
            return None
        if (
            cached_rv == pending.resource_version
            or relisted_since(pending.list_epoch)
            or self.monotonic() > pending.until
        ):
            del self._pending[key]
            return None
        return pending.replicas
