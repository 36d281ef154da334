"""The metrics source against a live Prometheus scraping a vLLM-format exporter, and under faults.

The exporter serves vLLM V1 metrics through prometheus_client's own content negotiation, exactly as vLLM
does, so Prometheus 2.x stores them with whatever spelling that negotiation produces (``vllm_`` with
prometheus_client ≥ 0.23); the source must read it either way.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from autoscaler.adapters.prometheus import PrometheusMetricsSource, PrometheusSettings
from autoscaler.core.types import DataFlag, Role
from autoscaler.ports import PoolQuery
from tests.fixtures.prometheus import FaultProxy, OpenMetricsBuilder, PrometheusFactory, PrometheusServer

pytestmark = pytest.mark.prometheus

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
PODS = ("live-0", "live-1", "live-2")
NS = "live"


class VllmExporter:
    """Serves vLLM V1 metrics for a few pods; a background task feeds requests at known rates.

    Ground truth is kept in Python: every observed TTFT with its time, and the gauges' current values.
    """

    def __init__(self, rate_per_pod: dict[str, float], seed: int = 7) -> None:
        self.rate = rate_per_pod
        self.rng = random.Random(seed)
        self.registry = CollectorRegistry()
        labels = ["namespace", "pod", "model_name"]
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "TTFT", labels, buckets=TTFT_BUCKETS, registry=self.registry
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds",
            "ITL",
            labels,
            buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.25),
            registry=self.registry,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "E2E",
            labels,
            buckets=(1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.waiting = Gauge("vllm:num_requests_waiting", "w", labels, registry=self.registry)
        self.running = Gauge("vllm:num_requests_running", "r", labels, registry=self.registry)
        self.kv = Gauge("vllm:kv_cache_usage_perc", "kv", labels, registry=self.registry)
        self.success = Counter(
            "vllm:request_success", "s", [*labels, "finished_reason"], registry=self.registry
        )
        self.prompt = Counter("vllm:prompt_tokens", "p", labels, registry=self.registry)
        self.gen = Counter("vllm:generation_tokens", "g", labels, registry=self.registry)
        self.observed: list[tuple[float, str, float]] = []  # (time, pod, ttft)
        self.accepts: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        for pod in PODS:
            # Like vLLM, every labelled child exists from start-up, so idle pods export zeros.
            lab = (NS, pod, "m")
            for metric in (self.ttft, self.itl, self.e2e, self.prompt, self.gen):
                metric.labels(*lab)
            self.success.labels(*lab, "stop")
            self.set_gauges(pod, waiting=2, running=3, kv=0.25)

    def set_gauges(self, pod: str, *, waiting: float, running: float, kv: float) -> None:
        lab = (NS, pod, "m")
        self.waiting.labels(*lab).set(waiting)
        self.running.labels(*lab).set(running)
        self.kv.labels(*lab).set(kv)

    async def _feed(self) -> None:
        step = 0.05
        last = time.time()
        carry = dict.fromkeys(self.rate, 0.0)
        while True:
            now = time.time()
            elapsed, last = now - last, now
            for pod, rate in self.rate.items():
                # Arrivals at ``rate`` per second of wall time, fractional part carried over.
                carry[pod] += rate * elapsed
                n, carry[pod] = int(carry[pod]), carry[pod] - int(carry[pod])
                for _ in range(n):
                    ttft = self.rng.lognormvariate(math.log(0.2), 0.6)
                    lab = (NS, pod, "m")
                    self.ttft.labels(*lab).observe(ttft)
                    self.itl.labels(*lab).observe(self.rng.uniform(0.02, 0.06))
                    self.e2e.labels(*lab).observe(ttft + 2.0)
                    self.success.labels(*lab, "stop").inc()
                    self.prompt.labels(*lab).inc(100)
                    self.gen.labels(*lab).inc(20)
                    self.observed.append((now, pod, ttft))
            await asyncio.sleep(step)

    async def _metrics(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        self.accepts.append(accept)
        encoder, content_type = choose_encoder(accept)
        return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        self._task = asyncio.create_task(self._feed())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
async def exporter() -> AsyncIterator[VllmExporter]:
    exp = VllmExporter({"live-0": 40.0, "live-1": 20.0, "live-2": 0.0})
    await exp.start()
    yield exp
    await exp.stop()


def live_query(window: float = 5.0) -> PoolQuery:
    return PoolQuery(
        key="live/pool",
        namespace=NS,
        pool="pool",
        engine="vllm",
        pods_by_role={Role.PREFILL: ["live-0", "live-1"], Role.DECODE: ["live-2"]},
        percentiles={"ttft": 0.95, "itl": 0.95},
        window_s=window,
    )


def bucket_of(value: float) -> tuple[float, float]:
    lower = 0.0
    for b in (*TTFT_BUCKETS, math.inf):
        if value <= b:
            return lower, b
        lower = b
    raise AssertionError("unreachable")


async def test_live_scrape_matches_exporter_ground_truth(
    prometheus_factory: PrometheusFactory, exporter: VllmExporter
) -> None:
    server = prometheus_factory.create(scrape_targets=[f"127.0.0.1:{exporter.port}"])
    try:
        async with PrometheusMetricsSource(PrometheusSettings(url=server.url, staleness_limit_s=5)) as src:
            await asyncio.sleep(2.5)
            exporter.set_gauges("live-0", waiting=7, running=9, kv=0.8)  # a change the source must see
            obs = None
            started = time.monotonic()
            for _ in range(60):  # the first non-empty rate() needs a few scrapes; then fill the window
                await asyncio.sleep(0.5)
                now = time.time()
                obs = (await src.observe([live_query()], now))["live/pool"]
                pre = obs.roles[Role.PREFILL]
                if (
                    obs.trustworthy
                    and pre.ttft is not None
                    and pre.queue_depth == 9
                    and time.monotonic() - started > 7.0
                ):
                    break
            assert obs is not None and obs.trustworthy, [r.notes for r in obs.roles.values()] if obs else None
            pre, dec = obs.roles[Role.PREFILL], obs.roles[Role.DECODE]
            assert pre.queue_depth == 9 and pre.running == 12  # 7 + 2, 9 + 3
            assert pre.kv_utilization == pytest.approx((0.8 + 0.25) / 2) and pre.kv_utilization_max == 0.8
            assert dec.arrival_rate == 0.0 and dec.ttft is None  # live-2 serves nothing
            # Rates against what the exporter really served in the window (its feed runs on a shared CPU,
            # so not the nominal 60/s); Prometheus extrapolates over scrape jitter.
            served = sum(
                1 for t, pod, _ in exporter.observed if pod != "live-2" and now - 5.5 < t <= now - 0.5
            )
            assert served > 50
            assert pre.arrival_rate == pytest.approx(served / 5.0, rel=0.25)
            assert pre.prompt_tokens_rate == pytest.approx(100 * pre.arrival_rate, rel=1e-6)
            # The p95 estimate lies in the bucket holding the true p95 of the TTFTs observed in the window.
            window = sorted(
                v for t, pod, v in exporter.observed if pod != "live-2" and now - 6.0 <= t <= now - 0.5
            )
            true_p95 = window[int(0.95 * (len(window) - 1))]
            lo, hi = bucket_of(true_p95)
            assert pre.ttft is not None
            assert lo - 1e-9 <= pre.ttft <= hi + 1e-9 or bucket_of(pre.ttft) in {
                bucket_of(lo),
                bucket_of(hi * 1.0001),
            }, (pre.ttft, true_p95)
            assert any("openmetrics" in a for a in exporter.accepts)
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------------------
# Faults


T0 = 1_700_000_000.0
NOW = T0 + 300.0


def small_dataset() -> OpenMetricsBuilder:
    b = OpenMetricsBuilder()
    times = [T0 + 15.0 * i for i in range(21)]
    for pod in ("f0", "f1"):
        lab = {"namespace": "fault", "pod": pod}
        b.gauge("vllm:num_requests_waiting", lab, 2, times)
        b.gauge("vllm:num_requests_running", lab, 3, times)
        b.gauge("vllm:kv_cache_usage_perc", lab, 0.5, times)
        b.histogram("vllm:time_to_first_token_seconds", lab, {0.5: 1, 1.0: 1}, times)
        b.histogram("vllm:inter_token_latency_seconds", lab, {0.05: 1}, times)
        b.histogram("vllm:e2e_request_latency_seconds", lab, {5.0: 1}, times)
        b.counter("vllm:request_success_total", lab, 1.0, times)
        b.counter("vllm:prompt_tokens_total", lab, 10.0, times)
        b.counter("vllm:generation_tokens_total", lab, 5.0, times)
    return b


@pytest.fixture(scope="module")
def fault_server(prometheus_factory: PrometheusFactory) -> Iterator[PrometheusServer]:
    srv = prometheus_factory.create(data=small_dataset())
    yield srv
    srv.stop()


@pytest.fixture
async def proxy(fault_server: PrometheusServer) -> AsyncIterator[FaultProxy]:
    p = FaultProxy(fault_server.url)
    await p.start()
    yield p
    await p.stop()


FAULT_QUERY = PoolQuery(
    key="fault/p",
    namespace="fault",
    pool="p",
    engine="vllm",
    pods_by_role={Role.PREFILL: ["f0"], Role.DECODE: ["f1"]},
    percentiles={"ttft": 0.9},
    window_s=60,
)


def assert_failed(obs_map: dict[str, object] | object, fragment: str) -> None:
    assert isinstance(obs_map, dict)
    obs = obs_map["fault/p"]
    assert not obs.source_ok and fragment in obs.error, obs.error
    for role in obs.roles.values():
        assert role.flags == {DataFlag.ERROR}
        assert role.queue_depth is None and role.arrival_rate is None and role.ttft is None


async def test_prometheus_stopped_mid_run_then_recovers(fault_server: PrometheusServer) -> None:
    async with PrometheusMetricsSource(
        PrometheusSettings(url=fault_server.url, retries=1, retry_backoff_s=0.01)
    ) as src:
        assert (await src.observe([FAULT_QUERY], NOW))["fault/p"].trustworthy
        fault_server.stop()
        try:
            assert_failed(dict(await src.observe([FAULT_QUERY], NOW)), "cannot connect")
            assert src.stats.failures > 0
        finally:
            fault_server.start()
        obs = (await src.observe([FAULT_QUERY], NOW))["fault/p"]
        assert obs.trustworthy and obs.roles[Role.PREFILL].queue_depth == 2


async def test_slow_reply_past_timeout_is_an_error_and_not_retried(proxy: FaultProxy) -> None:
    proxy.mode, proxy.delay_s = "delay", 1.5
    async with PrometheusMetricsSource(PrometheusSettings(url=proxy.url, timeout_s=0.3, retries=3)) as src:
        assert_failed(dict(await src.observe([FAULT_QUERY], NOW)), "no reply within 0.3 s")
        assert src.stats.attempts == src.stats.queries  # a timeout is not retried within the tick
        proxy.mode = "pass"
        assert (await src.observe([FAULT_QUERY], NOW))["fault/p"].trustworthy


@pytest.mark.parametrize(
    ("mode", "fragment"), [("malformed", "not Prometheus JSON"), ("wrongshape", "expected a list of series")]
)
async def test_malformed_replies(proxy: FaultProxy, mode: str, fragment: str) -> None:
    proxy.mode = mode
    async with PrometheusMetricsSource(PrometheusSettings(url=proxy.url, retries=2)) as src:
        assert_failed(dict(await src.observe([FAULT_QUERY], NOW)), fragment)
        assert src.stats.attempts == src.stats.queries  # a malformed reply is not retried


async def test_5xx_is_retried_with_bounded_jittered_backoff(proxy: FaultProxy) -> None:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    proxy.mode = "error500"
    settings = PrometheusSettings(url=proxy.url, retries=2, retry_backoff_s=0.5)
    async with PrometheusMetricsSource(settings, sleep=fake_sleep, rng=random.Random(1)) as src:
        assert_failed(dict(await src.observe([FAULT_QUERY], NOW)), "503")
        assert src.stats.attempts == 3 * src.stats.queries
        assert len(delays) == 2 * src.stats.queries
        assert all(0 <= d <= 0.5 * 2**1 for d in delays) and len(set(delays)) > 1
        proxy.mode = "pass"
        assert (await src.observe([FAULT_QUERY], NOW))["fault/p"].trustworthy


async def test_headers_and_path_prefix_reach_the_server(proxy: FaultProxy) -> None:
    """A Mimir-style path prefix is part of the URL; a 404 there is a permanent, reported error."""
    async with PrometheusMetricsSource(
        PrometheusSettings(url=proxy.url + "/prometheus", headers={"X-Scope-OrgID": "t"})
    ) as src:
        obs = await src.observe([FAULT_QUERY], NOW)
        assert_failed(dict(obs), "404")
        assert proxy.requests and all(p.startswith("/prometheus/api/v1/query") for p in proxy.requests)
