"""Serve the twin's replicas as vLLM-format Prometheus ``/metrics`` endpoints, from a live simulation.

One aiohttp server, one path per simulated replica: ``/metrics/<replica>`` (e.g. ``/metrics/both-3``).
``/targets`` returns a Prometheus ``file_sd`` document listing every replica that a scrape would reach, with
``__metrics_path__`` set per target, so a Prometheus ``file_sd_configs`` job scrapes them all from one
``host:port`` (write it to a file with :meth:`SimExporter.write_file_sd`). Replicas that are gone answer 404.

The simulation runs in accelerated time: ``speed`` simulated seconds per wall second, advanced by a
background task every ``tick_s`` wall seconds. With ``speed=None`` nothing advances on its own and the
caller drives it with :meth:`SimExporter.advance_to` (deterministic tests).

Metric names and labels follow vLLM V1 (``vllm/v1/metrics/loggers.py``): labels ``model_name`` and
``engine``; counters ``vllm:prompt_tokens_total``, ``vllm:generation_tokens_total``,
``vllm:request_success_total`` (with ``finished_reason``), ``vllm:num_preemptions_total``; gauges
``vllm:num_requests_running``, ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc``; histograms
``vllm:time_to_first_token_seconds``, ``vllm:inter_token_latency_seconds``,
``vllm:time_per_output_token_seconds`` (deprecated alias, same observations) and
``vllm:e2e_request_latency_seconds``, with vLLM's buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from autoscaler.sim.buckets import E2E_BUCKETS, ITL_BUCKETS, TTFT_BUCKETS
from autoscaler.sim.engine import Simulation
from autoscaler.sim.fleet import Replica, ReplicaState

__all__ = ["CONTENT_TYPE", "SimExporter", "render_replica"]

# the classic text format that every Prometheus version scrapes without name escaping
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABELS = ["model_name", "engine"]


def _buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    acc = 0
    for bound, c in zip((*bounds, float("inf")), counts, strict=True):
        acc += c
        out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(acc)))
    return out


class _ReplicaCollector:
    def __init__(self, rep: Replica, t: float, model: str, kv_capacity: int) -> None:
        self.rep, self.t, self.model, self.kv_capacity = rep, t, model, kv_capacity

    def collect(self) -> Iterator[Metric]:
        rep, labels = self.rep, [self.model, "0"]
        g = GaugeMetricFamily("vllm:num_requests_running", "Number of requests in model execution batches.",
                              labels=_LABELS)
        g.add_metric(labels, float(rep.num_running()))
        yield g
        g = GaugeMetricFamily("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                              labels=_LABELS)
        g.add_metric(labels, float(len(rep.waiting)))
        yield g
        g = GaugeMetricFamily("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
                              labels=_LABELS)
        kv = min(1.0, rep.kv_tokens_at(self.t) / self.kv_capacity) if self.kv_capacity > 0 else 0.0
        g.add_metric(labels, kv)
        yield g
        for name, doc, value in (
            ("vllm:prompt_tokens", "Number of prefill tokens processed.", rep.prompt_tokens),
            ("vllm:generation_tokens", "Number of generation tokens processed.", rep.gen_tokens),
            ("vllm:num_preemptions", "Cumulative number of preemption from the engine.", rep.preemptions),
        ):
            c = CounterMetricFamily(name, doc, labels=_LABELS)
            c.add_metric(labels, float(value))
            yield c
        c = CounterMetricFamily("vllm:request_success", "Count of successfully processed requests.",
                                labels=[*_LABELS, "finished_reason"])
        c.add_metric([*labels, "length"], float(rep.success))
        yield c
        for name, doc, bounds, counts, total in (
            ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
             TTFT_BUCKETS, rep.ttft_counts, rep.ttft_sum),
            ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
             ITL_BUCKETS, rep.itl_counts, rep.itl_sum),
            ("vllm:time_per_output_token_seconds",
             "Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds "
             "instead.", ITL_BUCKETS, rep.itl_counts, rep.itl_sum),
            ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
             E2E_BUCKETS, rep.e2e_counts, rep.e2e_sum),
        ):
            h = HistogramMetricFamily(name, doc, labels=_LABELS)
            h.add_metric(labels, _buckets(bounds, counts), float(total))
            yield h


def render_replica(rep: Replica, t: float, model: str, kv_capacity: int) -> bytes:
    """The replica's ``/metrics`` text at ``t`` (call ``Fleet.flush(t)`` first for up-to-date counters)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReplicaCollector(rep, t, model, kv_capacity))
    return generate_latest(registry)


class SimExporter:
    """An HTTP server exposing every simulated replica's vLLM metrics.

    Args:
        sim: the running simulation.
        speed: simulated seconds per wall second; ``None`` → advance only via :meth:`advance_to`.
        tick_s: wall seconds between background advances.
        model_name: value of the ``model_name`` label (default: the profile's model).
    """

    def __init__(
        self, sim: Simulation, *, speed: float | None = 60.0, tick_s: float = 0.1, model_name: str | None = None
    ) -> None:
        self.sim = sim
        self.speed = speed
        self.tick_s = tick_s
        first = next(iter(sim.profiles.values()))
        self.model = model_name or first.model
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # ---------------------------------------------------------------- simulation time

    def advance_to(self, t: float) -> None:
        """Advance the simulation to ``t`` simulated seconds (no-op if already past)."""
        if t > self.sim.now:
            self.sim.advance(t)

    async def _ticker(self) -> None:
        assert self.speed is not None
        loop = asyncio.get_running_loop()
        wall0, sim0 = loop.time(), self.sim.now
        while not self.sim.finished:
            await asyncio.sleep(self.tick_s)
            self.advance_to(sim0 + (loop.time() - wall0) * self.speed)

    # ---------------------------------------------------------------- HTTP

    def targets(self) -> list[dict[str, Any]]:
        """``file_sd`` target groups: one per reachable replica, with its metrics path and role."""
        groups = []
        for rep in self.sim.fleet.scraped():
            groups.append({
                "targets": [f"{self.host}:{self.port}"],
                "labels": {"__metrics_path__": f"/metrics/{rep.name}", "replica": rep.name, "role": rep.role.value},
            })
        return groups

    def write_file_sd(self, path: str | Path) -> None:
        """Write :meth:`targets` as a ``file_sd`` JSON file, atomically (Prometheus may read it any time)."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(self.targets(), fh, indent=1)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def _metrics(self, request: web.Request) -> web.Response:
        name = request.match_info["replica"]
        for rep in self.sim.fleet.replicas:
            if rep.name == name and rep.state in (ReplicaState.READY, ReplicaState.DRAINING):
                t = self.sim.now
                self.sim.fleet.flush(t)
                body = render_replica(rep, t, self.model, self.sim.fleet.kv_capacity(rep.role))
                return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
        raise web.HTTPNotFound(text=f"no serving replica named {name!r}\n")

    async def _targets(self, request: web.Request) -> web.Response:
        return web.json_response(self.targets())

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"sim_time_s": self.sim.now, "finished": self.sim.finished})

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start serving (``port=0`` picks a free port); returns the bound port."""
        app = web.Application()
        app.router.add_get("/metrics/{replica}", self._metrics)
        app.router.add_get("/targets", self._targets)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.host = host
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        if self.speed is not None:
            self._task = asyncio.create_task(self._ticker())
        return self.port

    async def stop(self) -> None:
        """Stop the background advance and the server."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
