"""The seams between the controller and the outside world, as small ``Protocol``s.

Each external system has exactly one port; adapters in ``autoscaler.adapters`` implement them against real
systems and ``autoscaler.sim`` implements them over the digital twin, so the reconciler cannot tell the
difference: ``autoscaler.controller`` imports these protocols only, never an adapter (an import-linter
contract), and the composition root (:mod:`autoscaler.app`) builds the adapters. Implementations raise only
the project's :mod:`autoscaler.errors` tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from autoscaler.core.types import Decision, Observation, Role

__all__ = [
    "Clock",
    "Cluster",
    "DecisionBoard",
    "DecisionRecord",
    "EventSink",
    "Fleet",
    "FleetReader",
    "LeaseRecord",
    "LeaseStore",
    "MetricsSource",
    "ObjectCache",
    "PoolQuery",
    "RoleTarget",
    "ScaleClient",
    "ScaleState",
    "StatusSink",
]


@dataclass(frozen=True, slots=True)
class RoleTarget:
    """A workload that serves one role, addressed through its ``/scale`` subresource."""

    role: Role
    namespace: str
    api_version: str  # e.g. "apps/v1", "leaderworkerset.x-k8s.io/v1"
    kind: str  # Deployment | StatefulSet | LeaderWorkerSet | any kind with a scale subresource
    name: str
    pod_selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScaleState:
    """``autoscaling/v1`` Scale of a target plus pod counts.

    Attributes:
        replicas: ``spec.replicas`` (what is asked for).
        status_replicas: ``status.replicas`` (pods that exist).
        ready: pods that are Ready.
        starting: pods that exist or are pending but are not Ready yet.
        resource_version: of the scale object, for optimistic concurrency.
    """

    replicas: int
    status_replicas: int
    ready: int
    starting: int
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class PoolQuery:
    """What the metrics source needs to know about one InferenceAutoscaler to observe its pool.

    Attributes:
        key: ``namespace/name`` of the InferenceAutoscaler; results come back under this key.
        namespace: namespace of the pool and its pods.
        pool: InferencePool name.
        engine: vllm | sglang | dynamo | trtllm.
        pods_by_role: pod names serving each role (from the API server), used to join per-pod series.
        percentiles: SLO percentile per signal, as a quantile in (0, 1): ``{"ttft": 0.95, "itl": 0.95}``.
        window_s: rate window, seconds.
        label_overrides: label names to use instead of the defaults (``namespace``, ``pod``, role label).
        metric_overrides: metric names to use instead of the engine's defaults.
        staleness_s: a pod whose newest sample is older than this is Stale, seconds
            (``spec.metrics.staleness``); None → the source's own default.
        unready: pods of ``pods_by_role`` that are not Ready (starting): their silence is expected and
            flags nothing (a starting replica exports no metrics yet).
    """

    key: str
    namespace: str
    pool: str
    engine: str
    pods_by_role: Mapping[Role, Sequence[str]]
    percentiles: Mapping[str, float]
    window_s: float
    label_overrides: Mapping[str, str] = field(default_factory=dict)
    metric_overrides: Mapping[str, str] = field(default_factory=dict)
    staleness_s: float | None = None
    unready: frozenset[str] = frozenset()


class MetricsSource(Protocol):
    """Observes many pools with a number of queries that does not grow with the number of pools."""

    async def observe(self, queries: Sequence[PoolQuery], now: float) -> Mapping[str, Observation]:
        """One :class:`Observation` per query key; failures become flags, never exceptions."""
        ...


class ScaleClient(Protocol):
    """Reads and writes the ``/scale`` subresource of role targets."""

    async def get_scale(self, target: RoleTarget) -> ScaleState:
        """Current scale and pod readiness of ``target``."""
        ...

    async def set_replicas(self, target: RoleTarget, replicas: int) -> None:
        """Set ``spec.replicas`` through ``/scale`` (merge patch)."""
        ...


class FleetReader(Protocol):
    """Reads pods per role for readiness and for joining per-pod metrics."""

    async def pods(self, target: RoleTarget) -> Sequence[tuple[str, bool]]:
        """``(pod name, ready)`` for each pod of ``target``."""
        ...


class Fleet(ScaleClient, FleetReader, Protocol):
    """The pools, workloads and pods the controller scales, from caches kept up to date in the background."""

    def start(self) -> None:
        """Start filling the caches."""
        ...

    async def wait_synced(self, timeout_s: float | None = None) -> None:
        """Wait until every cache has listed once (``timeout_s`` seconds at most; None waits forever)."""
        ...

    async def stop(self) -> None:
        """Stop the caches."""
        ...

    def pool(self, namespace: str, name: str, group: str) -> dict[str, Any]:
        """The InferencePool object; :class:`~autoscaler.errors.ResolutionError` (PoolNotFound) if absent."""
        ...

    async def resolve(
        self,
        namespace: str,
        role: Role,
        *,
        pool: Mapping[str, Any],
        role_label: str,
        explicit: tuple[str, str, str] | None,
    ) -> RoleTarget:
        """The one workload serving ``role``: the explicit ``(apiVersion, kind, name)`` or the workload whose
        pod template carries the pool's selector plus ``role_label=role``; else
        :class:`~autoscaler.errors.ResolutionError` or :class:`~autoscaler.errors.NotFoundError`."""
        ...


class ObjectCache(Protocol):
    """A watched collection of one resource type, held in memory (objects as JSON-shaped dicts)."""

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The cached object, or None."""
        ...

    def items(self) -> Iterable[dict[str, Any]]:
        """Every cached object."""
        ...

    def start(self) -> None:
        """Start listing and watching."""
        ...

    async def wait_synced(self, timeout_s: float | None = None) -> None:
        """Wait for the first complete list (``timeout_s`` seconds at most; None waits forever)."""
        ...

    async def stop(self) -> None:
        """Stop watching."""
        ...


class StatusSink(Protocol):
    """Writes the ``status`` of the controller's own objects, only when it changed."""

    async def write(
        self,
        namespace: str,
        name: str,
        current: Mapping[str, Any] | None,
        desired: Mapping[str, Any],
        *,
        current_rv: str = "",
        gate: Callable[[], bool] = ...,
    ) -> bool:
        """Move status from ``current`` (as read at ``current_rv``) to ``desired`` unless ``gate()`` is
        false; True when a write was sent."""
        ...

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is remembered of a deleted object."""
        ...


class EventSink(Protocol):
    """Records Events about objects (best effort: failures are swallowed)."""

    async def record(
        self,
        regarding: Mapping[str, Any],
        *,
        type_: str,
        reason: str,
        action: str,
        note: str,
        gate: Callable[[], bool] = ...,
    ) -> None:
        """One Event (``Normal`` or ``Warning``) about ``regarding``, unless ``gate()`` is false."""
        ...


class LeaseStore(Protocol):
    """One Lease object with optimistic concurrency, for leader election."""

    async def get(self) -> LeaseRecord | None:
        """The current record, or None when the Lease does not exist."""
        ...

    async def create(self, spec: Mapping[str, Any]) -> LeaseRecord:
        """Create it; :class:`~autoscaler.errors.ConflictError` when someone else did first."""
        ...

    async def update(self, spec: Mapping[str, Any], resource_version: str) -> LeaseRecord:
        """Replace it if still at ``resource_version``, else :class:`~autoscaler.errors.ConflictError`."""
        ...


class Cluster(Protocol):
    """The API server as the controller uses it: builds its caches and writers (the composition root passes
    one; the Kubernetes adapter's is :class:`~autoscaler.adapters.cluster.KubeCluster`)."""

    def cache(
        self,
        api_version: str,
        plural: str,
        kind: str,
        *,
        namespaces: Sequence[str] | None,
        label_selector: str,
        handler: Callable[[str, dict[str, Any]], None],
    ) -> ObjectCache:
        """A cache of one resource type over ``namespaces`` (None: all), of the objects matching
        ``label_selector`` (empty: all); ``handler(event type, object)`` is called for every change."""
        ...

    def fleet(self, namespaces: Sequence[str] | None) -> Fleet:
        """The pools, workloads and pods of ``namespaces``."""
        ...

    def status(self, api_version: str, plural: str, kind: str) -> StatusSink:
        """The status writer of one resource type."""
        ...

    def events(self, controller: str, instance: str) -> EventSink:
        """An Event recorder reporting as ``controller`` / ``instance``."""
        ...

    def lease(self, namespace: str, name: str) -> LeaseStore:
        """The Lease ``namespace/name``."""
        ...

    def dead_workers(self) -> list[str]:
        """Names of the background watches of the caches built here that have ended (the health check)."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The parts of a Lease's spec that the election reads, and its resourceVersion."""

    holder: str
    duration_s: int
    acquire_time: str
    renew_time: str
    transitions: int
    resource_version: str


class Clock(Protocol):
    """Time for the shell (the core gets ``now`` passed in and never reads a clock)."""

    def now(self) -> float:
        """Unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """The latest decision for one InferenceAutoscaler, as published to the metrics API and exporter.

    Attributes:
        namespace: of the InferenceAutoscaler.
        name: of the InferenceAutoscaler.
        pool: InferencePool name.
        labels: the InferenceAutoscaler's labels (the external metrics API filters on these).
        decision: the decision itself.
        observation: what it was based on.
        slo_targets: SLO target per signal (``ttft``, ``itl``), seconds.
        time: when it was made, Unix seconds.
    """

    namespace: str
    name: str
    pool: str
    labels: Mapping[str, str]
    decision: Decision
    observation: Observation
    slo_targets: Mapping[str, float]
    time: float


class DecisionBoard(Protocol):
    """Where the controller publishes decisions and the metrics API and exporter read them."""

    def publish(self, record: DecisionRecord) -> None:
        """Replace the record for ``(record.namespace, record.name)``."""
        ...

    def remove(self, namespace: str, name: str) -> None:
        """Forget an InferenceAutoscaler that was deleted."""
        ...

    def records(self, namespace: str | None = None) -> Sequence[DecisionRecord]:
        """All current records, optionally of one namespace."""
        ...
