"""Objects, the global resourceVersion counter, the event history and the watchers.

As in etcd, every write takes the next revision from one global counter, so resourceVersions are
comparable across kinds; the history keeps the most recent events for watch resumption, and everything
at or below ``compacted_rv`` is gone (a watch from there gets 410 Expired).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .jsonutil import clone
from .selectors import FieldRequirement, Requirement, match_fields, match_labels

StorageKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped


@dataclass(frozen=True)
class Event:
    rv: int
    key: StorageKey
    type: str  # ADDED / MODIFIED / DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


@dataclass(eq=False)  # identity semantics: watchers live in a set
class Watcher:
    key: StorageKey
    namespace: str | None
    labels: list[Requirement]
    fields: list[FieldRequirement]
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(default_factory=asyncio.Queue)

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace", "") != self.namespace:
            return False
        return match_labels(self.labels, meta.get("labels")) and match_fields(self.fields, obj)

    def offer(self, ev: Event) -> None:
        """Translate a store event into what this watcher sees, the way the watch cache filters.

        An object that stops matching the selector is reported as DELETED, one that starts matching as
        ADDED, so a filtered watch stays consistent with a filtered list.
        """
        new_ok = self.matches(ev.obj)
        old_ok = self.matches(ev.old)
        if ev.type == "ADDED" and new_ok:
            self.queue.put_nowait(("ADDED", ev.obj))
        elif ev.type == "MODIFIED":
            if new_ok and old_ok:
                self.queue.put_nowait(("MODIFIED", ev.obj))
            elif new_ok:
                self.queue.put_nowait(("ADDED", ev.obj))
            elif old_ok:
                self.queue.put_nowait(("DELETED", ev.obj))
        elif ev.type == "DELETED" and new_ok:
            self.queue.put_nowait(("DELETED", ev.obj))

    def close(self) -> None:
        self.queue.put_nowait(None)


class Store:
    def __init__(self, history_limit: int = 10_000) -> None:
        self.rv = 1
        self.compacted_rv = 0
        self.history_limit = history_limit
        self.history: deque[Event] = deque()
        self.objects: dict[StorageKey, dict[ObjKey, dict[str, Any]]] = {}
        self.watchers: set[Watcher] = set()
        self.listeners: list[Callable[[Event], None]] = []

    # ---- reads --------------------------------------------------------------------------------------

    def get(self, key: StorageKey, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get(key, {}).get((ns, name))
        return clone(obj) if obj is not None else None

    def iter(self, key: StorageKey, ns: str | None = None) -> Iterator[dict[str, Any]]:
        """Objects in (namespace, name) order; callers must not mutate them (copy first)."""
        items = self.objects.get(key, {})
        for k in sorted(items):
            if ns is None or k[0] == ns:
                yield items[k]

    # ---- writes -------------------------------------------------------------------------------------

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(
        self, key: StorageKey, obj: dict[str, Any], event_type: str, old: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Store obj (already given its new resourceVersion) and publish the event."""
        meta = obj["metadata"]
        self.objects.setdefault(key, {})[(meta.get("namespace", ""), meta["name"])] = obj
        self._publish(Event(int(meta["resourceVersion"]), key, event_type, clone(obj), old))
        return clone(obj)

    def remove(self, key: StorageKey, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get(key, {}).pop((ns, name), None)
        if obj is None:
            return None
        # The DELETED event carries the object at the deletion's revision, as etcd's watch does.
        obj["metadata"]["resourceVersion"] = str(self.next_rv())
        self._publish(Event(self.rv, key, "DELETED", clone(obj), clone(obj)))
        return clone(obj)

    def drop_kind(self, key: StorageKey) -> None:
        self.objects.pop(key, None)

    def _publish(self, ev: Event) -> None:
        self.history.append(ev)
        while len(self.history) > self.history_limit:
            dropped = self.history.popleft()
            self.compacted_rv = dropped.rv
        for w in list(self.watchers):
            if w.key == ev.key:
                w.offer(ev)
        for listener in list(self.listeners):
            listener(ev)

    def compact(self, upto: int | None = None) -> None:
        """Forget history up to revision ``upto`` (default: now), like an etcd compaction."""
        upto = self.rv if upto is None else upto
        while self.history and self.history[0].rv <= upto:
            self.history.popleft()
        self.compacted_rv = max(self.compacted_rv, upto)

    # ---- watch --------------------------------------------------------------------------------------

    def too_old(self, rv: int) -> bool:
        return rv < self.compacted_rv

    def subscribe(self, w: Watcher, since: int | None) -> None:
        """Register a watcher. since=None: synthetic ADDED for the current state; else replay from history.

        Runs without awaiting, so no write can slip in between the snapshot/replay and registration.
        """
        if since is None:
            for obj in self.iter(w.key, w.namespace):
                if w.matches(obj):
                    w.queue.put_nowait(("ADDED", clone(obj)))
        else:
            for ev in self.history:
                if ev.rv > since and ev.key == w.key:
                    w.offer(ev)
        self.watchers.add(w)

    def unsubscribe(self, w: Watcher) -> None:
        self.watchers.discard(w)

    def close_watchers(self) -> int:
        n = len(self.watchers)
        for w in list(self.watchers):
            w.close()
        return n
