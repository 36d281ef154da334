"""The :class:`~autoscaler.ports.Cluster` port over the Kubernetes adapter: builds the controller's caches and
writers on one :class:`~autoscaler.adapters.kube.KubeTransport` and keeps track of them for the health check."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autoscaler.adapters.kube import (
    Informer,
    KubeFleet,
    KubeTransport,
    LeaseLock,
    ResourceType,
    StatusWriter,
)
from autoscaler.adapters.kube_events import EventRecorder

__all__ = ["KubeCluster"]


class KubeCluster:
    """The API server behind ``transport`` (closed by :meth:`close`)."""

    def __init__(self, transport: KubeTransport) -> None:
        self.transport = transport
        self._informers: list[Informer] = []
        self._fleets: list[KubeFleet] = []

    def cache(
        self,
        api_version: str,
        plural: str,
        kind: str,
        *,
        namespaces: Sequence[str] | None,
        label_selector: str,
        handler: Callable[[str, dict[str, Any]], None],
    ) -> Informer:
        """An :class:`Informer` (list + watch) of one resource type."""
        informer = Informer(
            self.transport,
            ResourceType(api_version, plural, kind),
            namespaces=namespaces,
            label_selector=label_selector,
            handler=handler,
        )
        self._informers.append(informer)
        return informer

    def fleet(self, namespaces: Sequence[str] | None) -> KubeFleet:
        """A :class:`KubeFleet` over ``namespaces``."""
        fleet = KubeFleet(self.transport, namespaces)
        self._fleets.append(fleet)
        return fleet

    def status(self, api_version: str, plural: str, kind: str) -> StatusWriter:
        """A :class:`StatusWriter` of one resource type."""
        return StatusWriter(self.transport, ResourceType(api_version, plural, kind))

    def events(self, controller: str, instance: str) -> EventRecorder:
        """An :class:`EventRecorder` reporting as ``controller`` / ``instance``."""
        return EventRecorder(self.transport, controller, instance)

    def lease(self, namespace: str, name: str) -> LeaseLock:
        """A :class:`LeaseLock` on ``namespace/name``."""
        return LeaseLock(self.transport, namespace, name)

    def dead_workers(self) -> list[str]:
        """Names of the watch tasks that have ended."""
        # a fleet's caches are read at check time: it adds one per workload kind it discovers
        informers = [*self._informers, *(i for f in self._fleets for i in f.informers.values())]
        return [t.get_name() for i in informers for t in i._tasks if t.done()]

    async def close(self) -> None:
        """Close the transport."""
        await self.transport.close()
