"""The controller's own Prometheus ``/metrics``, on its own port and its own ``CollectorRegistry``.

Two kinds of series:

- read from the :class:`~autoscaler.ports.DecisionBoard` **at scrape time** (nothing to keep in sync): per
  InferenceAutoscaler and role the desired, current and ready replicas, the observed TTFT/ITL at the SLO
  percentile, the same SLO ratios and queue-per-replica the external metrics API serves (so a
  prometheus-adapter or KEDA Prometheus trigger can use them where another external-metrics provider is
  installed), predicted TTFT/ITL, cost per hour, decision age, and decisions counted by reason;
- pushed by the controller through a small API: :meth:`Exporter.observe_reconcile`,
  :meth:`Exporter.count_error`, :meth:`Exporter.set_leader`.

Labels: ``namespace``, ``inferenceautoscaler``, ``pool`` and, per role, ``role``. The resource's own labels are
not copied (unbounded label names would make the series unpredictable).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from autoscaler.adapters.metrics_api import METRICS
from autoscaler.log import get_logger
from autoscaler.ports import DecisionBoard

__all__ = ["BoardCollector", "Exporter"]

log = get_logger(__name__)

PREFIX = "inference_autoscaler"
# Reconciles take milliseconds when Prometheus is quick and seconds when it is not; the buckets span both.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BoardCollector(Collector):
    """Builds gauge families from the board's current records on every scrape."""

    def __init__(self, board: DecisionBoard, clock: Callable[[], float] = time.time) -> None:
        self._board = board
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        """One family per quantity; a series is omitted when its value is unknown (never exported as 0)."""
        role_labels = ["namespace", "inferenceautoscaler", "pool", "role"]
        ia_labels = ["namespace", "inferenceautoscaler", "pool"]

        def role_gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=role_labels)

        desired = role_gauge("desired_replicas", "Replicas the controller wants for the role.")
        current = role_gauge("current_replicas", "Replicas currently set on the role's scale target (spec).")
        ready = role_gauge("ready_replicas", "Ready replicas of the role.")
        ttft = role_gauge(
            "observed_ttft_seconds", "Observed time to first token at the SLO percentile, seconds."
        )
        itl = role_gauge(
            "observed_itl_seconds", "Observed inter-token latency at the SLO percentile, seconds."
        )
        api_families = {
            name: role_gauge(name.removeprefix(f"{PREFIX}_"), METRICS[name].description)
            for name in METRICS
            if name != f"{PREFIX}_desired_replicas"
        }
        pred_ttft = GaugeMetricFamily(
            f"{PREFIX}_predicted_ttft_seconds",
            "TTFT the capacity model expects at the desired replicas, seconds.",
            labels=ia_labels,
        )
        pred_itl = GaugeMetricFamily(
            f"{PREFIX}_predicted_itl_seconds",
            "ITL the capacity model expects at the desired replicas, seconds.",
            labels=ia_labels,
        )
        cost = GaugeMetricFamily(
            f"{PREFIX}_cost_per_hour",
            "Cost of the desired replicas, spec currency per hour.",
            labels=ia_labels,
        )
        age = GaugeMetricFamily(
            f"{PREFIX}_decision_age_seconds", "Seconds since the last published decision.", labels=ia_labels
        )
        now = self._clock()
        for rec in self._board.records():
            base = [rec.namespace, rec.name, rec.pool]
            for role in sorted(set(rec.decision.desired) | set(rec.observation.roles)):
                lv = [*base, role.value]
                if role in rec.decision.desired:
                    desired.add_metric(lv, float(rec.decision.desired[role]))
                ro = rec.observation.roles.get(role)
                if ro is not None:
                    current.add_metric(lv, float(ro.replicas))
                    ready.add_metric(lv, float(ro.ready))
                    for fam, v in ((ttft, ro.ttft), (itl, ro.itl)):
                        if v is not None and math.isfinite(v):
                            fam.add_metric(lv, v)
                for name, fam in api_families.items():
                    value = METRICS[name].value(rec, role)
                    if value is not None and math.isfinite(value):
                        fam.add_metric(lv, value)
            d = rec.decision
            for fam, value in (
                (pred_ttft, d.predicted_ttft),
                (pred_itl, d.predicted_itl),
                (cost, d.cost_per_hour),
            ):
                if value is not None and math.isfinite(value):
                    fam.add_metric(base, value)
            age.add_metric(base, max(0.0, now - rec.time))
        yield from (
            desired,
            current,
            ready,
            ttft,
            itl,
            *api_families.values(),
            pred_ttft,
            pred_itl,
            cost,
            age,
        )
        counts_fn = getattr(self._board, "reason_counts", None)
        if callable(counts_fn):
            decisions = CounterMetricFamily(
                f"{PREFIX}_decisions", "Decisions published, by primary reason code.", labels=["reason"]
            )
            for reason, n in sorted(counts_fn().items()):
                decisions.add_metric([reason], float(n))
            yield decisions


class Exporter:
    """``/metrics`` over plain HTTP on its own port (scraped in-cluster; put a proxy in front for TLS).

    Args:
        board: read at scrape time.
        host, port: where to listen; port 0 picks a free one (see :attr:`port` after :meth:`start`).
    """

    def __init__(self, board: DecisionBoard, *, host: str = "0.0.0.0", port: int = 8080) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BoardCollector(board))
        self._reconcile = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Time one reconcile of one InferenceAutoscaler took, seconds.",
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self._errors = Counter(
            f"{PREFIX}_errors",
            "Errors by kind (e.g. prometheus, kube_api, invalid_spec).",
            ["kind"],
            registry=self.registry,
        )
        self._leader = Gauge(
            f"{PREFIX}_leader", "1 while this replica holds the leader lease.", registry=self.registry
        )
        self._host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    def observe_reconcile(self, seconds: float) -> None:
        """Record how long one reconcile took, seconds."""
        self._reconcile.observe(seconds)

    def count_error(self, kind: str) -> None:
        """Count one error of ``kind`` (a short, bounded vocabulary: the label's cardinality is the caller's)."""
        self._errors.labels(kind=kind).inc()

    def set_leader(self, leader: bool) -> None:
        """Whether this replica currently leads (and so actuates)."""
        self._leader.set(1.0 if leader else 0.0)

    def render(self) -> bytes:
        """The text exposition of everything, as served on ``/metrics``."""
        return generate_latest(self.registry)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        """Listen for scrapes."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=30.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        log.info("metrics exporter listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop listening; idempotent."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
