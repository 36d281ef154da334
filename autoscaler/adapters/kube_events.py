"""Kubernetes ``events.k8s.io/v1`` Events, recorded the way client-go's recorder does (repeats become a series)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from autoscaler.adapters.kube import (
    EVENTS,
    MERGE_PATCH,
    KubeTransport,
    Request,
    collection_path,
    object_path,
    rfc3339_micro,
)
from autoscaler.errors import PermanentError, TemporaryError

__all__ = ["EventRecorder"]

log = structlog.get_logger("autoscaler.kube")



@dataclass
class _Series:
    name: str
    count: int
    first: float
    last: float


class EventRecorder:
    """Records ``events.k8s.io/v1`` Events, aggregating repeats into a series as client-go's recorder does.

    An Event identical in (regarding object, type, reason, action, note) to one recorded within
    ``series_window_s`` seconds is not created again: the existing Event's ``series.count`` and
    ``series.lastObservedTime`` are patched instead.

    Args:
        transport: the HTTP seam.
        controller: ``reportingController`` (e.g. ``autoscaler.inference.dev/controller``).
        instance: ``reportingInstance`` (the pod name / identity).
        series_window_s: window for aggregating repeats, seconds. Default 360 (client-go's 6 minutes).
        clock: Unix seconds.
    """

    def __init__(
        self,
        transport: KubeTransport,
        controller: str,
        instance: str,
        *,
        series_window_s: float = 360.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.controller = controller
        self.instance = instance[:128]
        self.series_window_s = series_window_s
        self.clock = clock
        self.created = 0
        self.patched = 0
        self._series: dict[tuple[str, ...], _Series] = {}

    async def record(
        self,
        regarding: Mapping[str, Any],
        *,
        type_: str,
        reason: str,
        action: str,
        note: str,
        gate: Callable[[], bool] = lambda: True,
    ) -> None:
        """Record one Event about ``regarding`` (an object with apiVersion, kind, metadata).

        Failures are swallowed (Events are best effort, as in client-go) except that the gate is honoured.
        """
        meta = regarding.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        note = note[:1024]
        key = (namespace, str(meta.get("uid") or meta.get("name")), type_, reason, action, note)
        now = self.clock()
        series = self._series.get(key)
        if len(self._series) > 10000:  # bound memory: drop expired series
            self._series = {k: s for k, s in self._series.items() if now - s.last <= self.series_window_s}
        if not gate():
            return
        try:
            if series is not None and now - series.last <= self.series_window_s:
                series.count += 1
                series.last = now
                body: dict[str, Any] = {
                    "series": {"count": series.count, "lastObservedTime": rfc3339_micro(now)}
                }
                await self.transport.send(
                    Request(
                        "PATCH",
                        object_path(EVENTS, namespace, series.name),
                        body=body,
                        content_type=MERGE_PATCH,
                    )
                )
                self.patched += 1
                return
            name = f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:16]}"
            body = {  # noqa: RUF100
                "apiVersion": EVENTS.api_version,
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "eventTime": rfc3339_micro(now),
                "reportingController": self.controller,
                "reportingInstance": self.instance,
                "action": action,
                "reason": reason,
                "note": note,
                "type": type_,
                "regarding": {
                    "apiVersion": regarding.get("apiVersion"),
                    "kind": regarding.get("kind"),
                    "name": meta.get("name"),
                    "namespace": namespace,
                    "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
            }
            await self.transport.send(Request("POST", collection_path(EVENTS, namespace), body=body))
            self.created += 1
            self._series[key] = _Series(name, 1, now, now)
        except (TemporaryError, PermanentError) as err:
            self._series.pop(key, None)
            # Best effort, but not silent: a refused Event (403, 422) would otherwise go unnoticed.
            log.warning("event not recorded", reason=reason, regarding=meta.get("name"), namespace=namespace,
                        error=str(err))
