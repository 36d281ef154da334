"""The controller process: caches, one supervised worker per InferenceAutoscaler, leader election, health
endpoints and graceful shutdown.

Life cycle::

    start caches (IAS, pods, workloads, pools) ─► wait for the first list ─► /readyz = 200
    leader election ─► on acquire: one worker per IAS (reconcile, then sleep until the next tick or a change)
                   └─► on loss: cancel every worker at once (and the write gate is already closed)
    SIGTERM ─► stop starting reconciles, let writes in flight finish (grace period), release the Lease,
               stop caches, close the HTTP session
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from aiohttp import web

from autoscaler.api.v1alpha1 import API_VERSION, KIND, PLURAL, InferenceAutoscalerSpec
from autoscaler.controller.election import LeaderElector
from autoscaler.controller.reconciler import MetricsBatcher, Reconciler, SourceFactory, SystemClock
from autoscaler.core.types import Policy
from autoscaler.errors import PermanentError, TemporaryError
from autoscaler.ports import Clock, Cluster, DecisionBoard
from autoscaler.retry import Backoff
from autoscaler.settings import ControllerSettings

__all__ = ["ERROR_KINDS", "IAS_TYPE", "Controller", "HealthServer", "Instruments", "ReconcileStats"]

log = structlog.get_logger("autoscaler.controller")

IAS_TYPE = (API_VERSION, PLURAL, KIND)  # the InferenceAutoscaler resource: apiVersion, plural, kind
REPORTING_CONTROLLER = "autoscaler.inference.dev/controller"

# The bounded vocabulary of ``inference_autoscaler_errors_total{kind}``:
#   metrics    the metrics source failed or returned nothing for a pool (the policy holds)
#   kube       the API server failed (5xx, 429, timeouts, 409 after retries, 4xx on reads) or a referenced
#              object (pool, scale target) is missing or ambiguous
#   actuation  a /scale write was refused (403, 422, ...)
#   spec       an InferenceAutoscaler spec is invalid
#   internal   anything else that escaped a reconcile (a bug: the worker backs off and retries)
ERROR_KINDS = ("metrics", "kube", "actuation", "spec", "internal")


class Instruments(Protocol):
    """Where the controller reports on itself (:class:`~autoscaler.adapters.exporter.Exporter` in ``run``)."""

    def observe_reconcile(self, seconds: float) -> None:
        """One reconcile took ``seconds``."""

    def count_error(self, kind: str) -> None:
        """One error of ``kind`` (one of :data:`ERROR_KINDS`)."""

    def set_leader(self, leader: bool) -> None:
        """Whether this instance currently leads."""


class _NoInstruments:
    def observe_reconcile(self, seconds: float) -> None:
        return None

    def count_error(self, kind: str) -> None:
        return None

    def set_leader(self, leader: bool) -> None:
        return None


@dataclass
class ReconcileStats:
    """Counters for the exporter and the benchmark (latencies in seconds)."""

    reconciles: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def record(self, seconds: float) -> None:
        """Add one reconcile duration (keeps the newest 100 000)."""
        self.latencies.append(seconds)
        if len(self.latencies) > 100_000:
            del self.latencies[:50_000]


@dataclass
class _Worker:
    task: asyncio.Task[None]
    wake: asyncio.Event
    busy: bool = False


class Controller:
    """Runs reconciles for every watched InferenceAutoscaler while this instance leads.

    Args:
        settings: process settings.
        cluster: the API server port (closed by :meth:`run` on exit).
        policy: the decision policy.
        source_for: ``spec -> (key, MetricsSource)`` (see :class:`MetricsBatcher`).
        board: decision board to publish to (optional).
        clock: Unix time for decisions.
        instruments: receives reconcile durations, errors by kind and leader status (optional).
    """

    def __init__(
        self,
        settings: ControllerSettings,
        cluster: Cluster,
        policy: Policy[InferenceAutoscalerSpec, Any],
        source_for: SourceFactory,
        *,
        board: DecisionBoard | None = None,
        clock: Clock | None = None,
        instruments: Instruments | None = None,
    ) -> None:
        self.settings = settings
        self.instruments: Instruments = instruments or _NoInstruments()
        self.cluster = cluster
        namespaces = settings.namespace_list
        self.ias = cluster.cache(
            *IAS_TYPE, namespaces=namespaces, label_selector=settings.label_selector, handler=self._on_ias_event
        )
        self.fleet = cluster.fleet(namespaces)
        self.status = cluster.status(*IAS_TYPE)
        self.events = cluster.events(REPORTING_CONTROLLER, settings.identity)
        self.batcher = MetricsBatcher(source_for, settings.metrics_batch_linger)
        self.elector: LeaderElector | None = None
        if settings.leader_elect:
            self.elector = LeaderElector(
                cluster.lease(settings.lease_namespace_resolved, settings.lease_name),
                settings.identity,
                lease_duration_s=settings.lease_duration,
                renew_deadline_s=settings.renew_deadline,
                retry_period_s=settings.retry_period,
                on_started=self._on_leading,
                on_stopped=self._on_not_leading,
            )
        self.reconciler = Reconciler(
            ias=self.ias,
            fleet=self.fleet,
            status=self.status,
            events=self.events,
            metrics=self.batcher,
            policy=policy,
            board=board,
            clock=clock or SystemClock(),
            may_write=self.may_write,
            count_error=self.instruments.count_error,
        )
        self.stats = ReconcileStats()
        self.workers: dict[str, _Worker] = {}
        self.leading = not settings.leader_elect
        self.stopping = False
        self.ready = asyncio.Event()
        self.health: HealthServer | None = None

    # -- gates and leadership

    def may_write(self) -> bool:
        """True while this instance may write to the cluster (leader, not shutting down past the grace)."""
        return self.elector.is_leader() if self.elector is not None else True

    def _on_leading(self) -> None:
        self.leading = True
        # What this instance remembers from an earlier term predates another leader's writes, which against its
        # old baselines would look like manual changes: every resource starts over from the cluster.
        self.reconciler.memory.clear()
        self.instruments.set_leader(True)
        if self.ready.is_set():
            self._sync_workers()

    def _on_not_leading(self) -> None:
        self.leading = False
        self.instruments.set_leader(False)
        self._cancel_workers()

    # -- workers

    def _on_ias_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if kind == "DELETED":
            worker = self.workers.pop(key, None)
            if worker is not None:
                worker.task.cancel()
            self.reconciler.forget(key)
            return
        worker = self.workers.get(key)
        if worker is None:
            if self.leading and self.ready.is_set() and not self.stopping:
                self._start_worker(key)
            return
        mem = self.reconciler.memory.get(key)
        if mem is None or mem.seen_generation != meta.get("generation"):
            worker.wake.set()  # spec changed: reconcile now rather than at the next tick

    def _start_worker(self, key: str) -> None:
        wake = asyncio.Event()
        task = asyncio.create_task(self._work(key, wake), name=f"reconcile {key}")
        self.workers[key] = _Worker(task, wake)

    def _sync_workers(self) -> None:
        if self.stopping or not self.leading:
            return
        for obj in list(self.ias.items()):
            meta = obj.get("metadata") or {}
            key = f"{meta.get('namespace')}/{meta.get('name')}"
            if key not in self.workers:
                self._start_worker(key)

    def _cancel_workers(self) -> None:
        for worker in self.workers.values():
            worker.task.cancel()
        self.workers.clear()

    async def _work(self, key: str, wake: asyncio.Event) -> None:
        """Supervised loop of one resource: a failure here backs off and retries, and never touches others."""
        backoff = Backoff(base=1.0, cap=60.0)
        me = self.workers.get(key)
        while not self.stopping:
            me = self.workers.get(key)
            if me is None:
                return
            wake.clear()
            started = time.perf_counter()
            me.busy = True
            try:
                delay = await self.reconciler.reconcile_once(key)
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # supervision boundary: log, back off, try again
                self.stats.errors += 1
                # The project's error tree here comes from the API server adapter; anything else is a bug.
                kube = isinstance(err, (TemporaryError, PermanentError))
                self.instruments.count_error("kube" if kube else "internal")
                delay = backoff.next_delay()
                log.warning(
                    "reconcile failed",
                    resource=key,
                    error=f"{type(err).__name__}: {err}",
                    retry_in=round(delay, 2),
                )
            finally:
                me.busy = False
            self.stats.reconciles += 1
            elapsed = time.perf_counter() - started
            self.stats.record(elapsed)
            self.instruments.observe_reconcile(elapsed)
            if delay is None:
                self.workers.pop(key, None)
                return
            if backoff.attempt == 0:
                delay = _until_next_tick(delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)

    # -- running

    async def start(self) -> None:
        """Start caches, health server and (if enabled) the election; returns once caches are synced."""
        self.ias.start()
        self.fleet.start()
        if self.settings.health_port >= 0:
            self.health = HealthServer(self, self.settings.health_host, self.settings.health_port)
            await self.health.start()
        await self.ias.wait_synced()
        await self.fleet.wait_synced()
        self.ready.set()
        log.info("caches synced", inference_autoscalers=len(list(self.ias.items())))
        self._elector_task: asyncio.Task[None] | None = None
        if self.elector is not None:
            self.instruments.set_leader(False)
            self._elector_task = asyncio.create_task(self.elector.run(), name="leader election")
        else:
            self.instruments.set_leader(True)
            self._sync_workers()

    async def stop(self) -> None:
        """Graceful stop: let writes in flight finish (up to the grace period), release the Lease, close."""
        self.stopping = True
        for worker in self.workers.values():
            worker.wake.set()  # idle workers leave their loop at once
        tasks = [w.task for w in self.workers.values()]
        if tasks:
            # A worker leaves its loop after the reconcile in flight (and its writes) completes.
            await asyncio.wait(tasks, timeout=self.settings.shutdown_grace)
        self._cancel_workers()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if getattr(self, "_elector_task", None) is not None:
            assert self._elector_task is not None
            self._elector_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._elector_task
        if self.elector is not None:
            await self.elector.release()
        self.instruments.set_leader(False)
        await self.batcher.close()
        await self.ias.stop()
        await self.fleet.stop()
        if self.health is not None:
            await self.health.stop()
        log.info("stopped")

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully and close the cluster connection (its owner's
        job otherwise: ``run_controller`` calls :meth:`start`/:meth:`stop` itself to close servers in
        between)."""
        try:
            await self.start()
            await stop.wait()
        finally:
            await self.stop()
            await self.cluster.close()


def _until_next_tick(interval: float) -> float:
    """Seconds to the next multiple of ``interval`` in wall-clock time, so every resource with the same
    interval wakes together and their metrics queries are batched into one call."""
    now = time.time()
    nxt = math.floor(now / interval + 1) * interval
    return max(0.0, nxt - now)


class HealthServer:
    """``/healthz`` (process and caches alive) and ``/readyz`` (caches synced) on a small aiohttp server."""

    def __init__(self, controller: Controller, host: str, port: int) -> None:
        self.controller = controller
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _healthz(self, _: web.Request) -> web.Response:
        dead = self.controller.cluster.dead_workers()
        if dead:
            return web.Response(status=500, text=f"dead: {', '.join(dead)}\n")
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        if not self.controller.ready.is_set():
            return web.Response(status=503, text="caches not synced\n")
        role = "leader" if self.controller.leading else "standby"
        return web.Response(text=f"ok ({role})\n")

    async def start(self) -> None:
        """Bind and serve; ``port`` 0 picks a free port (stored back in ``self.port``)."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        log.info("health server listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
