"""Reliability matrix, Prometheus rows: a real Prometheus (backfilled with promtool), the real
``PrometheusMetricsSource`` and the real control core (``ProfilePolicy``) inside the real controller, against
the real kube-apiserver (through the fault proxy). The Deployments are paused, so kube-controller-manager
creates no Pods for them: each role's Pods are the bare, named Pods the Prometheus data is about, made Ready by
the kubelet stand-in.

The controller's clock starts at ``NOW`` (inside the backfilled data) and advances with the wall clock, so
each scenario has a "bad phase" (until ``NOW + BAD_S``) followed by clean data. On clean data the fleet is
over-provisioned (3 replicas per role, almost no load), so the policy wants to scale down (after its first
metrics window of history; the clock runs at ``SPEED``× so that takes seconds): holding during the
bad phase is therefore a decision, not an accident — the ``clean`` scenario proves the scale-down happens.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.controller.profile_policy import ProfilePolicy
from localcluster.client import Kube
from tests.fixtures.controller import condition, deployment, events_for, eventually, ias, pool, replicas
from tests.fixtures.prometheus import (
    FaultProxy,
    OpenMetricsBuilder,
    PrometheusServer,
    backfill,
    require_prometheus,
)
from tests.fixtures.reliability import PrometheusSources, ShiftedClock, named_pod, paused

pytestmark = [pytest.mark.asyncio, pytest.mark.prometheus]

NOW = 1_700_000_000.0
SPEED = 10.0  # controller seconds per wall-clock second: one metrics window (1m) passes in 6 s
BAD_S = 90.0  # length of the bad phase, seconds of controller time
END = NOW + 1200.0  # the data goes on for 20 min of controller time (2 min of wall time)
GAUGE_TIMES = [NOW - 200.0 + 5.0 * i for i in range(int((END - NOW + 200.0) / 5.0))]  # every 5 s
COUNTER_TIMES = [NOW - 600.0 + 15.0 * i for i in range(int((END - NOW + 600.0) / 15.0))]  # every 15 s
INF = math.inf
LOOKBACK_S = 100.0  # Prometheus's instant-query lookback; the spec's staleness limit is 60 s (see scenario_fleet)
PODS = {"prefill": ("p0", "p1", "p2"), "decode": ("d0", "d1", "d2")}

# scenario → (role, pod index, what goes wrong during the bad phase, DataFlag expected in the condition)
SCENARIOS: dict[str, tuple[str, int, str, str]] = {
    "clean": ("prefill", 0, "none", ""),
    "nan": ("prefill", 0, "waiting=NaN", "NotFinite"),
    "posinf": ("decode", 1, "kv=+Inf", "NotFinite"),
    "neginf": ("prefill", 1, "running=-Inf", "NotFinite"),
    "dup": ("decode", 0, "duplicate waiting series", "Duplicate"),
    "partial": ("prefill", 2, "one pod's series missing (scrape failure)", "Partial"),
    "stale": ("decode", 2, "every pod's newest sample > 60 s old", "Stale"),
    "ancient": ("prefill", 0, "samples 3 h old only", "Missing"),
    "empty": ("decode", 0, "no series at all", "Missing"),
}


def _gauges(b: OpenMetricsBuilder, ns: str, pod: str, times: list[float], **override: float) -> None:
    labels = {"namespace": ns, "pod": pod, "model_name": "m"}
    values = {"waiting": 0.0, "running": 1.0, "kv": 0.05, **override}
    b.add("vllm:num_requests_waiting", labels, [(t, values["waiting"]) for t in times])
    b.add("vllm:num_requests_running", labels, [(t, values["running"]) for t in times])
    b.add("vllm:kv_cache_usage_perc", labels, [(t, values["kv"]) for t in times])


def _counters(b: OpenMetricsBuilder, ns: str, pod: str) -> None:
    labels = {"namespace": ns, "pod": pod, "model_name": "m"}
    b.histogram("vllm:time_to_first_token_seconds", labels, {0.1: 0.2, INF: 0}, COUNTER_TIMES)
    b.histogram("vllm:inter_token_latency_seconds", labels, {0.02: 2.0, INF: 0}, COUNTER_TIMES)
    b.histogram("vllm:e2e_request_latency_seconds", labels, {2.5: 0.2, INF: 0}, COUNTER_TIMES)
    b.counter("vllm:request_success_total", {**labels, "finished_reason": "stop"}, 0.2, COUNTER_TIMES)
    b.counter("vllm:prompt_tokens_total", labels, 100.0, COUNTER_TIMES)
    b.counter("vllm:generation_tokens_total", labels, 20.0, COUNTER_TIMES)


def dataset() -> OpenMetricsBuilder:
    b = OpenMetricsBuilder()
    bad = [t for t in GAUGE_TIMES if t < NOW + BAD_S]
    good = [t for t in GAUGE_TIMES if t >= NOW + BAD_S]
    clean_too = {"direct": SCENARIOS["clean"], "slow": SCENARIOS["clean"]}  # the availability test's pools
    for ns, (bad_role, idx, _, _) in {**SCENARIOS, **clean_too}.items():
        for role, pods in PODS.items():
            for i, pod in enumerate(pods):
                _counters(b, ns, pod)
                target = role == bad_role and i == idx
                if ns in ("clean", *clean_too) or (not target and ns not in ("stale", "ancient", "empty")):
                    _gauges(b, ns, pod, GAUGE_TIMES)
                    continue
                if ns in ("stale", "ancient", "empty") and role != bad_role:
                    _gauges(b, ns, pod, GAUGE_TIMES)
                    continue
                # The faulty pod (or, for stale/ancient/empty, every pod of the role) during the bad phase:
                if ns == "nan":
                    _gauges(b, ns, pod, bad, waiting=math.nan)
                elif ns == "posinf":
                    _gauges(b, ns, pod, bad, kv=INF)
                elif ns == "neginf":
                    _gauges(b, ns, pod, bad, running=-INF)
                elif ns == "dup":
                    _gauges(b, ns, pod, bad)
                    b.add(
                        "vllm:num_requests_waiting",
                        {"namespace": ns, "pod": pod, "model_name": "m", "instance": "second-scrape:8000"},
                        [(t, 0.0) for t in bad],
                    )
                elif ns == "stale":
                    _gauges(b, ns, pod, [t for t in bad if t <= NOW - 70.0])
                elif ns == "ancient":
                    _gauges(b, ns, pod, [NOW - 3 * 3600.0 + i for i in range(60)])
                # partial / empty: no gauge series at all during the bad phase
                _gauges(b, ns, pod, good)
    return b


@pytest.fixture(scope="module")
def tsdb_template() -> Iterator[Path]:
    """The backfilled TSDB, built once per module and copied for every server."""
    require_prometheus()
    root = Path(tempfile.mkdtemp(prefix="reliab-prom-"))
    backfill(dataset(), root / "data")
    try:
        yield root / "data"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def prom(tsdb_template: Path, tmp_path: Path) -> Iterator[PrometheusServer]:
    """A Prometheus on a copy of the template TSDB, not started yet; stopped afterwards."""
    # Backfilled blocks carry no staleness markers, so a series that stops (a duplicate scrape going away)
    # stays visible for the whole lookback; a shorter lookback lets the test see it go within seconds.
    server = PrometheusServer(tmp_path / "prom", extra_args=[f"--query.lookback-delta={LOOKBACK_S:g}s"])
    shutil.rmtree(server.tsdb)
    shutil.copytree(tsdb_template, server.tsdb)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def sources() -> AsyncIterator[PrometheusSources]:
    s = PrometheusSources()
    try:
        yield s
    finally:
        await s.aclose()


def scenario_fleet(server: Any, ns: str, url: str, *, timeout: str = "2s", min_replicas: int = 1) -> None:
    server.ensure_namespace(ns)
    server.create(pool("llm", "llm", ns=ns))
    for role, pods in PODS.items():
        server.create(paused(deployment(f"llm-{role}", "llm", role, len(pods), ns=ns)))
        for pod in pods:
            server.create(named_pod(pod, f"llm-{role}", "llm", role, ns))
    obj = ias(
        "llm",
        "llm",
        ns=ns,
        behavior={"scaleDown": {"stabilizationWindow": "0s"}},
    )
    obj["spec"]["metrics"]["prometheus"] = {"url": url, "timeout": timeout}
    obj["spec"]["metrics"]["staleness"] = "1m"  # the "stale" pods' newest samples are 70–100 s old
    for rs in obj["spec"]["roles"].values():
        rs["minReplicas"] = min_replicas
    server.create(obj)


def set_min(server: Any, ns: str, minimum: int) -> None:
    """Set every role's ``minReplicas`` of the namespace's autoscaler (a merge patch, as ``kubectl patch``)."""
    roles = {role: {"minReplicas": minimum} for role in PODS}
    server.kube.patch("autoscaler.inference.dev/v1alpha1", "InferenceAutoscaler", "llm", ns, {"spec": {"roles": roles}})


async def all_pods_ready(server: Any, namespaces: list[str]) -> None:
    """Wait until the kubelet stand-in has made every named Pod Ready: a Pod not yet Ready is not expected to
    report metrics, so before then a scrape failure on it would not show as ``Partial``."""
    def ready() -> bool:
        pods = [p for p in server.kube.list_objects("v1", "Pod") if p["metadata"]["namespace"] in namespaces]
        ok = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                     for c in (p.get("status") or {}).get("conditions", []))]
        return len(ok) == len(namespaces) * sum(len(v) for v in PODS.values())

    await eventually(ready, within=30, interval=0.2)


class ReplicaWatch:
    """Samples every role's replicas about every 20 ms with the controller time, to check the whole history."""

    def __init__(self, server: Any, clock: ShiftedClock, namespaces: list[str]) -> None:
        self.server, self.clock, self.namespaces = server, clock, namespaces
        plane = server.plane  # its own client: the sampling thread must not share the test's HTTP session
        self.kube = Kube(plane.url, plane.admin_token, str(plane.ca.path))
        self.history: dict[tuple[str, str], list[tuple[float, int]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            # One cluster-wide list per sample, off the event loop the controller runs on.
            deployments = await asyncio.to_thread(self.kube.list_objects, "apps/v1", "Deployment")
            now = self.clock.now()
            for d in deployments:
                ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
                role = name.removeprefix("llm-")
                if ns in self.namespaces and role in PODS:
                    self.history.setdefault((ns, role), []).append((now, int(d["spec"]["replicas"])))
            await asyncio.sleep(0.02)

    def __enter__(self) -> ReplicaWatch:
        self._task = asyncio.create_task(self._run(), name="replica watch")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.kube.close()

    def shrank_before(self, ns: str, t: float, roles: tuple[str, ...] = tuple(PODS)) -> list[tuple[str, float, int]]:
        """(role, time, replicas) samples below the starting count taken before controller time ``t``."""
        out = []
        for role in roles:
            samples = self.history.get((ns, role), [])
            start = samples[0][1] if samples else 0
            out.extend((role, when, n) for when, n in samples if when < t and n < start)
        return out

    def out_of_bounds(self, lo: int, hi: int) -> list[tuple[str, str, int]]:
        return [(ns, role, n) for (ns, role), s in self.history.items() for _, n in s if not lo <= n <= hi]


async def test_bad_prometheus_data_holds_then_recovers(kube_server, reliable_controller, prom, sources):
    """NaN, +Inf, -Inf, duplicate series, one pod's series lost, 2-min-old and 3-h-old samples, no series:
    the role is held (never shrunk), ``MetricsAvailable=False/HoldOnBadData`` names the flag, a Warning
    Event says so; once the data is clean the same process scales the over-provisioned fleet down."""
    prom.start()
    for ns in SCENARIOS:
        scenario_fleet(kube_server, ns, prom.url)
    await all_pods_ready(kube_server, list(SCENARIOS))
    clock = ShiftedClock(NOW, speed=SPEED)
    with ReplicaWatch(kube_server, clock, list(SCENARIOS)) as watch:
        await reliable_controller(ProfilePolicy(), sources, clock=clock)
        # During the bad phase: the flag is named in the condition, and an Event was recorded.
        for ns, (_, _, what, flag) in SCENARIOS.items():
            if not flag:
                continue
            c = await eventually(lambda ns=ns: condition(kube_server, "llm", "MetricsAvailable", ns), within=5)
            assert clock.now() < NOW + BAD_S, "bad phase ended before the first status was written"
            assert (c["status"], c["reason"]) == ("False", "HoldOnBadData"), (ns, what, c)
            assert flag in c["message"], (ns, what, c["message"])
            await eventually(
                lambda ns=ns: any(
                    e["reason"] == "HoldOnBadData" and e["type"] == "Warning"
                    for e in events_for(kube_server, "llm", ns)
                ),
                within=3,
            )
        # The clean control scales down at once (proving the others hold by decision).
        await eventually(lambda: replicas(kube_server, "llm-prefill", "clean") < 3, within=12)
        # After the fault clears, every scenario recovers without a restart and scales down.
        for ns in SCENARIOS:
            try:
                await eventually(
                    lambda ns=ns: condition(kube_server, "llm", "MetricsAvailable", ns)["status"] == "True",
                    within=20,
                )
            except AssertionError:
                raise AssertionError((ns, condition(kube_server, "llm", "MetricsAvailable", ns))) from None
            await eventually(
                lambda ns=ns: replicas(kube_server, "llm-prefill", ns) < 3
                and replicas(kube_server, "llm-decode", ns) < 3,
                within=20,
            )
    # The role with bad data never shrank while it was bad (the other role, on clean data, may: the hold is
    # per role, as docs/control.md says).
    for ns, (role, _, what, flag) in SCENARIOS.items():
        if flag:
            shrank = watch.shrank_before(ns, NOW + BAD_S, (role,))
            assert not shrank, (ns, what, shrank[:3])
    assert not watch.out_of_bounds(1, 8)


async def test_prometheus_down_at_start_killed_and_slow(kube_server, reliable_controller, prom, sources):
    """Down at start, killed mid-run and restarted, slower than the query timeout: hold (never shrink),
    ``MetricsAvailable=False/MetricsUnavailable`` with the cause and a Warning Event; recover when it
    comes back, in the same process."""
    proxy = FaultProxy(prom.url)
    await proxy.start()
    try:
        scenario_fleet(kube_server, "direct", prom.url, min_replicas=3)
        scenario_fleet(kube_server, "slow", proxy.url, timeout="1s", min_replicas=3)
        await all_pods_ready(kube_server, ["direct", "slow"])
        clock = ShiftedClock(NOW + BAD_S + 30.0, speed=SPEED)  # all clean from here on
        controller = await reliable_controller(ProfilePolicy(), sources, clock=clock)

        async def lower_min(ns: str) -> None:
            set_min(kube_server, ns, 1)

        async def unavailable(ns: str, fragment: str) -> None:
            c = await eventually(
                lambda: (c := condition(kube_server, "llm", "MetricsAvailable", ns))
                and c["reason"] == "MetricsUnavailable"
                and c,
                within=10,
            )
            assert c["status"] == "False" and fragment in c["message"], c
            await eventually(
                lambda: any(
                    e["reason"] == "MetricsUnavailable" and e["type"] == "Warning"
                    for e in events_for(kube_server, "llm", ns)
                ),
                within=3,
            )

        # 1. Prometheus down at start; the "slow" pool's proxy also answers after the timeout.
        proxy.mode, proxy.delay_s = "delay", 3.0
        await lower_min("direct")
        await lower_min("slow")
        await unavailable("direct", "cannot connect")
        await unavailable("slow", "no reply within 1 s")
        reconciles = controller.stats.reconciles
        await eventually(lambda: controller.stats.reconciles >= reconciles + 4)
        for ns in ("direct", "slow"):
            assert replicas(kube_server, "llm-prefill", ns) == 3 and replicas(kube_server, "llm-decode", ns) == 3

        # 2. Prometheus starts: "direct" recovers and scales down; "slow" now times out instead.
        prom.start()
        await eventually(lambda: replicas(kube_server, "llm-prefill", "direct") < 3, within=15)
        assert condition(kube_server, "llm", "MetricsAvailable", "direct")["status"] == "True"
        await unavailable("slow", "no reply within 1 s")
        assert replicas(kube_server, "llm-prefill", "slow") == 3

        # 3. The slow proxy heals: "slow" recovers without a restart.
        proxy.mode = "pass"
        await eventually(lambda: replicas(kube_server, "llm-prefill", "slow") < 3, within=15)

        # 4. Killed mid-run: raise the floor, kill Prometheus, lower the floor again — the policy would
        #    scale down on data, but there is none: hold until Prometheus is back on the same TSDB.
        set_min(kube_server, "direct", 3)
        await eventually(lambda: replicas(kube_server, "llm-prefill", "direct") == 3, within=10)
        prom.stop()
        killed_at = time.monotonic()
        await lower_min("direct")
        await unavailable("direct", "cannot connect")
        await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - killed_at)))
        assert replicas(kube_server, "llm-prefill", "direct") == 3
        assert replicas(kube_server, "llm-decode", "direct") == 3
        prom.start()
        await eventually(lambda: replicas(kube_server, "llm-prefill", "direct") < 3, within=15)
        assert condition(kube_server, "llm", "MetricsAvailable", "direct")["status"] == "True"
    finally:
        await proxy.stop()
