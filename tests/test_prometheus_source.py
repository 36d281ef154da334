"""PrometheusMetricsSource against a real Prometheus loaded with deterministic samples (promtool backfill).

Every expected number below is worked out by hand from the per-second increments written into the TSDB;
counters grow linearly, so ``rate()`` over any window returns their slope exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

import pytest

from autoscaler.adapters.engines import ENGINES, Signal
from autoscaler.adapters.prometheus import (
    PrometheusMetricsSource,
    PrometheusSettings,
    _Group,
    _GroupKey,
    build_queries,
)
from autoscaler.core.types import DataFlag, Role
from autoscaler.ports import PoolQuery
from tests.fixtures.prometheus import FaultProxy, OpenMetricsBuilder, PrometheusFactory, PrometheusServer

pytestmark = pytest.mark.prometheus

T0 = 1_700_000_000.0
NOW = T0 + 600.0
TIMES = [T0 + 15.0 * i for i in range(41)]  # every 15 s up to NOW
INF = math.inf

# Per-second observations per bucket (non-cumulative), vLLM-like bounds.
TTFT_P0 = {0.1: 0, 0.25: 2, 0.5: 4, 1.0: 3, 2.5: 1, INF: 0}
TTFT_P1 = {0.1: 1, 0.25: 1, 0.5: 2, 1.0: 0, 2.5: 0, INF: 0}
# Summed cumulative: 0.1→1, 0.25→4, 0.5→10, 1.0→13, 2.5→14, +Inf→14.
TTFT_P95 = 1.0 + (2.5 - 1.0) * (0.95 * 14 - 13) / (14 - 13)  # 1.45 s
TTFT_P50 = 0.25 + (0.5 - 0.25) * (0.5 * 14 - 4) / (10 - 4)  # 0.375 s
ITL_D0 = {0.01: 5, 0.025: 10, 0.05: 4, 0.1: 1, INF: 0}
ITL_D1 = {0.01: 0, 0.025: 5, 0.05: 5, 0.1: 0, INF: 0}
# Summed cumulative: 0.01→5, 0.025→20, 0.05→29, 0.1→30, +Inf→30.
ITL_P95 = 0.025 + (0.05 - 0.025) * (0.95 * 30 - 20) / (29 - 20)  # 0.04861 s
ITL_P99 = 0.05 + (0.1 - 0.05) * (0.99 * 30 - 29) / (30 - 29)  # 0.085 s
# Tail beyond the last finite bound: the rank falls in +Inf → the highest finite bound.
TAIL = {0.5: 1, 1.0: 1, INF: 8}


@dataclass(frozen=True)
class Names:
    prefix: str = "vllm:"
    itl: str = "inter_token_latency_seconds"
    kv: str = "kv_cache_usage_perc"


def vllm_pod(
    b: OpenMetricsBuilder,
    ns: str,
    pod: str,
    *,
    waiting: float,
    running: float,
    kv: float,
    ttft: Mapping[float, float] | None = None,
    itl: Mapping[float, float] | None = None,
    success: float = 1.0,
    prompt: float = 100.0,
    gen: float = 50.0,
    names: Names = Names(),
    times: list[float] = TIMES,
) -> None:
    labels = {"namespace": ns, "pod": pod, "model_name": "m", "engine": "0"}
    p = names.prefix
    b.gauge(f"{p}num_requests_waiting", labels, waiting, times)
    b.gauge(f"{p}num_requests_running", labels, running, times)
    b.gauge(f"{p}{names.kv}", labels, kv, times)
    b.histogram(f"{p}time_to_first_token_seconds", labels, ttft or {0.5: 1, INF: 0}, times)
    b.histogram(f"{p}{names.itl}", labels, itl or {0.05: 1, INF: 0}, times)
    b.histogram(f"{p}e2e_request_latency_seconds", labels, {5.0: 1, INF: 0}, times)
    b.counter(f"{p}request_success_total", {**labels, "finished_reason": "stop"}, success * 0.8, times)
    b.counter(f"{p}request_success_total", {**labels, "finished_reason": "length"}, success * 0.2, times)
    b.counter(f"{p}prompt_tokens_total", labels, prompt, times)
    b.counter(f"{p}generation_tokens_total", labels, gen, times)


def dataset() -> OpenMetricsBuilder:
    b = OpenMetricsBuilder()
    # Disaggregated vLLM V1 pool.
    vllm_pod(b, "vllm-a", "p0", waiting=3, running=4, kv=0.5, ttft=TTFT_P0, success=2.5, prompt=1000)
    vllm_pod(b, "vllm-a", "p1", waiting=5, running=6, kv=0.7, ttft=TTFT_P1, success=1.5, prompt=500)
    vllm_pod(b, "vllm-a", "d0", waiting=0, running=20, kv=0.9, itl=ITL_D0, gen=300)
    vllm_pod(b, "vllm-a", "d1", waiting=1, running=10, kv=0.3, itl=ITL_D1, gen=200)
    # The ``vllm_`` spelling with the pre-0.10 names; and one pod exporting both KV names (new wins).
    old = Names(prefix="vllm_", itl="time_per_output_token_seconds", kv="gpu_cache_usage_perc")
    vllm_pod(b, "vllm-b", "b0", waiting=2, running=3, kv=0.25, itl=ITL_D0, names=old)
    vllm_pod(b, "vllm-b", "b1", waiting=4, running=5, kv=0.75, itl=ITL_D1, names=old)
    vllm_pod(b, "vllm-c", "c0", waiting=1, running=1, kv=0.4)
    b.gauge("vllm:gpu_cache_usage_perc", {"namespace": "vllm-c", "pod": "c0"}, 0.99, TIMES)
    # Tail in +Inf.
    vllm_pod(b, "vllm-t", "t0", waiting=0, running=1, kv=0.1, ttft=TAIL)
    # SGLang.
    for pod, q, r, kv in (("s0", 7, 2, 0.2), ("s1", 1, 4, 0.6)):
        labels = {"namespace": "sg", "pod": pod, "model_name": "m"}
        b.gauge("sglang:num_queue_reqs", labels, q, TIMES)
        b.gauge("sglang:num_running_reqs", labels, r, TIMES)
        b.gauge("sglang:token_usage", labels, kv, TIMES)
        b.histogram("sglang:time_to_first_token_seconds", labels, TTFT_P0 if pod == "s0" else TTFT_P1, TIMES)
        b.histogram("sglang:inter_token_latency_seconds", labels, ITL_D0 if pod == "s0" else ITL_D1, TIMES)
        b.histogram("sglang:e2e_request_latency_seconds", labels, {4.0: 1, INF: 0}, TIMES)
        b.counter("sglang:num_requests_total", labels, 3.0, TIMES)
        b.counter("sglang:prompt_tokens_total", labels, 700.0, TIMES)
        b.counter("sglang:generation_tokens_total", labels, 90.0, TIMES)
    # Dynamo: frontend pod and a worker pod in one role.
    fe = {"namespace": "dyn", "pod": "frontend-0", "dynamo_namespace": "x"}
    b.gauge("dynamo_frontend_queued_requests", fe, 6, TIMES)
    b.gauge("dynamo_frontend_inflight_requests", fe, 12, TIMES)
    b.histogram("dynamo_frontend_time_to_first_token_seconds", fe, TTFT_P0, TIMES)
    b.histogram("dynamo_frontend_inter_token_latency_seconds", fe, ITL_D0, TIMES)
    b.histogram("dynamo_frontend_request_duration_seconds", fe, {8.0: 2, INF: 0}, TIMES)
    b.counter("dynamo_frontend_requests_total", {**fe, "status": "success"}, 4.0, TIMES)
    b.counter("dynamo_frontend_input_sequence_tokens_sum", fe, 2000.0, TIMES)
    b.counter("dynamo_frontend_output_tokens_total", fe, 400.0, TIMES)
    b.gauge(
        "dynamo_component_kvstats_gpu_cache_usage_percent",
        {"namespace": "dyn", "pod": "worker-0"},
        0.8,
        TIMES,
    )
    # TensorRT-LLM through Dynamo (``trtllm_`` prefix).
    tl = {"namespace": "trt", "pod": "g0", "model_name": "m", "engine_type": "trtllm"}
    b.histogram("trtllm_time_to_first_token_seconds", tl, TTFT_P0, TIMES)
    b.histogram("trtllm_time_per_output_token_seconds", tl, ITL_D0, TIMES)
    b.histogram("trtllm_e2e_request_latency_seconds", tl, {4.0: 1, INF: 0}, TIMES)
    b.counter("trtllm_request_success_total", {**tl, "finished_reason": "stop"}, 2.0, TIMES)
    # Faults.
    vllm_pod(b, "faults", "nan0", waiting=1, running=math.nan, kv=0.5)
    vllm_pod(b, "faults", "dup0", waiting=1, running=1, kv=0.5)
    b.gauge(
        "vllm:num_requests_waiting",
        {"namespace": "faults", "pod": "dup0", "model_name": "m", "engine": "0", "instance": "second-scrape"},
        1,
        TIMES,
    )
    vllm_pod(b, "faults", "stale0", waiting=1, running=1, kv=0.5, times=[t for t in TIMES if t <= NOW - 120])
    vllm_pod(b, "faults", "part0", waiting=2, running=2, kv=0.5)
    vllm_pod(b, "faults", "idle0", waiting=0, running=0, kv=0.0, ttft={0.5: 0, INF: 0})
    vllm_pod(b, "faults", "inf0", waiting=math.inf, running=1, kv=0.5)
    # Injection: label values that would break naive quoting, and regex metacharacters.
    for ns, pod, v in (
        ('"} or vector(1) or {', 'x"\\\n✓', 11),
        ("a.b", "r0", 21),
        ("axb", "r0", 31),
        ("a\\b", "r1", 41),
        ("weird\u2028ns", "r2", 51),
    ):
        vllm_pod(b, ns, pod, waiting=v, running=1, kv=0.5)
    # History: arrivals ramping up over the hour before T0.
    hist_times = [T0 - 3600 + 15.0 * i for i in range(241)]
    labels = {"namespace": "hist", "pod": "h0"}
    b.add(
        "vllm:request_success_total",
        labels,
        [(t, 0.5 * ((t - hist_times[0]) ** 2) / 600) for t in hist_times],
    )
    b.counter("vllm:prompt_tokens_total", labels, 80.0, hist_times)
    b.counter("vllm:generation_tokens_total", labels, 30.0, hist_times)
    return b


@pytest.fixture(scope="module")
def server(prometheus_factory: PrometheusFactory) -> Iterator[PrometheusServer]:
    srv = prometheus_factory.create(data=dataset())
    yield srv
    srv.stop()


@pytest.fixture
async def source(server: PrometheusServer) -> AsyncIterator[PrometheusMetricsSource]:
    async with PrometheusMetricsSource(PrometheusSettings(url=server.url, retries=0)) as src:
        yield src


def pq(
    key: str, ns: str, engine: str = "vllm", pct: float = 0.95, window: float = 60.0, **roles: list[str]
) -> PoolQuery:
    return PoolQuery(
        key=key,
        namespace=ns,
        pool=key.split("/")[-1],
        engine=engine,
        pods_by_role={Role(r): pods for r, pods in roles.items()},
        percentiles={"ttft": pct, "itl": pct, "e2e": pct},
        window_s=window,
    )


async def test_vllm_v1_disaggregated_pool_matches_hand_computed_values(
    source: PrometheusMetricsSource,
) -> None:
    obs = (await source.observe([pq("a/llama", "vllm-a", prefill=["p0", "p1"], decode=["d0", "d1"])], NOW))[
        "a/llama"
    ]
    assert obs.source_ok and obs.trustworthy
    pre, dec = obs.roles[Role.PREFILL], obs.roles[Role.DECODE]
    assert pre.ttft == pytest.approx(TTFT_P95, rel=1e-9)
    assert dec.itl == pytest.approx(ITL_P95, rel=1e-9)
    assert pre.queue_depth == pytest.approx(8) and pre.running == pytest.approx(10)
    assert pre.kv_utilization == pytest.approx(0.6) and pre.kv_utilization_max == pytest.approx(0.7)
    # vLLM counts request_success at completion (4/s here): on the entry role arrivals are first tokens, the
    # TTFT histogram's count (10 + 4 per second); the decode role keeps its completions (1 + 1).
    assert pre.arrival_rate == pytest.approx(14.0) and pre.prompt_tokens_rate == pytest.approx(1500)
    assert dec.arrival_rate == pytest.approx(2.0)
    assert dec.generation_tokens_rate == pytest.approx(500) and dec.running == pytest.approx(30)
    assert pre.e2e == pytest.approx(0.95 * 5.0)  # one bucket [0, 5]: linear interpolation from 0
    assert pre.reporting == 2 and dec.reporting == 2


@pytest.mark.parametrize(
    ("pct", "expected_ttft", "expected_itl"), [(0.5, TTFT_P50, None), (0.99, None, ITL_P99)]
)
async def test_percentile_follows_the_query(
    source: PrometheusMetricsSource, pct: float, expected_ttft: float | None, expected_itl: float | None
) -> None:
    obs = (
        await source.observe([pq("a/x", "vllm-a", pct=pct, prefill=["p0", "p1"], decode=["d0", "d1"])], NOW)
    )["a/x"]
    if expected_ttft is not None:
        assert obs.roles[Role.PREFILL].ttft == pytest.approx(expected_ttft, rel=1e-9)
    if expected_itl is not None:
        assert obs.roles[Role.DECODE].itl == pytest.approx(expected_itl, rel=1e-9)


async def test_python_quantile_equals_prometheus_histogram_quantile(source: PrometheusMetricsSource) -> None:
    for q in (0.1, 0.5, 0.9, 0.95, 0.99):
        reply = await source.query(
            f"histogram_quantile({q}, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket"
            f'{{namespace="vllm-a", pod=~"p0|p1"}}[60s])))',
            NOW,
        )
        theirs = float(reply[0]["value"][1])
        obs = (await source.observe([pq("a/q", "vllm-a", pct=q, prefill=["p0", "p1"])], NOW))["a/q"]
        assert obs.roles[Role.PREFILL].ttft == pytest.approx(theirs, rel=1e-12)


async def test_tail_in_inf_bucket_returns_highest_finite_bound(source: PrometheusMetricsSource) -> None:
    obs = (await source.observe([pq("t/t", "vllm-t", both=["t0"])], NOW))["t/t"]
    assert obs.roles[Role.BOTH].ttft == pytest.approx(1.0)


async def test_underscore_spelling_and_old_names(source: PrometheusMetricsSource) -> None:
    obs = await source.observe(
        [pq("b/b", "vllm-b", both=["b0", "b1"]), pq("c/c", "vllm-c", both=["c0"])], NOW
    )
    both = obs["b/b"].roles[Role.BOTH]
    assert obs["b/b"].trustworthy, both.notes
    assert both.itl == pytest.approx(ITL_P95, rel=1e-9)
    assert both.kv_utilization == pytest.approx(0.5) and both.kv_utilization_max == pytest.approx(0.75)
    assert both.queue_depth == pytest.approx(6)
    # c0 exports both kv_cache_usage_perc (0.4) and the old gpu_cache_usage_perc (0.99): the new name wins.
    assert obs["c/c"].roles[Role.BOTH].kv_utilization == pytest.approx(0.4)


async def test_sglang_dynamo_trtllm_maps(source: PrometheusMetricsSource) -> None:
    obs = await source.observe(
        [
            pq("sg/p", "sg", engine="sglang", both=["s0", "s1"]),
            pq("dyn/p", "dyn", engine="dynamo", both=["frontend-0", "worker-0"]),
            pq("trt/p", "trt", engine="trtllm", both=["g0"]),
        ],
        NOW,
    )
    sg = obs["sg/p"].roles[Role.BOTH]
    assert obs["sg/p"].trustworthy, sg.notes
    assert (sg.queue_depth, sg.running) == (pytest.approx(8), pytest.approx(6))
    assert sg.ttft == pytest.approx(TTFT_P95) and sg.itl == pytest.approx(ITL_P95)
    assert sg.kv_utilization == pytest.approx(0.4) and sg.arrival_rate == pytest.approx(6.0)
    dyn = obs["dyn/p"].roles[Role.BOTH]
    assert dyn.queue_depth == pytest.approx(6) and dyn.running == pytest.approx(12)
    assert dyn.kv_utilization == pytest.approx(0.8) and dyn.prompt_tokens_rate == pytest.approx(2000)
    assert dyn.generation_tokens_rate == pytest.approx(400) and dyn.arrival_rate == pytest.approx(4.0)
    # The TTFT buckets come from the frontend alone: same hand-computed p95 as p0's buckets.
    assert dyn.ttft == pytest.approx(1.0 + 1.5 * (0.95 * 10 - 9) / (10 - 9))
    trt = obs["trt/p"].roles[Role.BOTH]
    assert trt.ttft == pytest.approx(1.0 + 1.5 * (0.95 * 10 - 9) / (10 - 9))
    assert trt.arrival_rate == pytest.approx(10.0)  # first tokens (TTFT_P0's count), not completions (2/s)
    assert trt.queue_depth is None and trt.kv_utilization is None and trt.running is None
    assert any("not exported by trtllm" in n for n in trt.notes)


@pytest.mark.parametrize(
    ("pods", "flag", "field_none"),
    [
        (["nan0"], DataFlag.NOT_FINITE, "running"),
        (["inf0"], DataFlag.NOT_FINITE, "queue_depth"),
        (["dup0"], DataFlag.DUPLICATE, None),
        (["stale0"], DataFlag.STALE, "queue_depth"),
        (["part0", "gone0"], DataFlag.PARTIAL, None),
        (["gone0", "gone1"], DataFlag.MISSING, "queue_depth"),
    ],
)
async def test_bad_data_becomes_flags_not_zeros(
    source: PrometheusMetricsSource, pods: list[str], flag: DataFlag, field_none: str | None
) -> None:
    obs = (await source.observe([pq("f/x", "faults", both=pods)], NOW))["f/x"]
    role = obs.roles[Role.BOTH]
    assert obs.source_ok
    assert flag in role.flags, role.notes
    assert not obs.trustworthy
    if field_none:
        assert getattr(role, field_none) is None
    assert role.notes


@pytest.mark.parametrize(("staleness_s", "stale"), [(None, True), (90.0, True), (200.0, False)])
async def test_staleness_limit_comes_from_the_query(
    source: PrometheusMetricsSource, staleness_s: float | None, stale: bool
) -> None:
    """stale0's newest sample is 120 s old: Stale under the source's 60 s default and a 90 s spec limit,
    fresh under a 200 s one (``spec.metrics.staleness`` reaches the source through the PoolQuery)."""
    q = dataclasses.replace(pq("f/s", "faults", both=["stale0"]), staleness_s=staleness_s)
    role = (await source.observe([q], NOW))["f/s"].roles[Role.BOTH]
    assert (DataFlag.STALE in role.flags) is stale, role.notes
    assert (role.queue_depth is None) is stale
    if stale:
        assert any(f"older than {staleness_s or 60:g} s" in n for n in role.notes), role.notes


async def test_pods_that_left_still_count_in_the_window_rates(source: PrometheusMetricsSource) -> None:
    """A pod scaled away keeps contributing its rates (arrivals, tokens, latency buckets) while it was listed
    within the window plus the staleness limit; gauges and freshness come from the listed pods only."""
    both = pq("a/gone", "vllm-a", prefill=["p0", "p1"], decode=["d0"])
    await source.observe([both], NOW - 1)
    one = pq("a/gone", "vllm-a", prefill=["p0"], decode=["d0"])
    pre = (await source.observe([one], NOW))["a/gone"].roles[Role.PREFILL]
    assert pre.arrival_rate == pytest.approx(14.0) and pre.prompt_tokens_rate == pytest.approx(1500)
    assert pre.ttft == pytest.approx(TTFT_P95, rel=1e-9)
    assert pre.queue_depth == pytest.approx(3) and pre.reporting == 1 and not pre.flags
    # Forgotten once listed longer ago than window + staleness (60 + 1 s here): p0 alone (10 first tokens/s).
    stale = dataclasses.replace(pq("a/old", "vllm-a", prefill=["p0", "p1"]), staleness_s=1.0)
    await source.observe([stale], NOW - 100)
    alone = dataclasses.replace(pq("a/old", "vllm-a", prefill=["p0"]), staleness_s=1.0)
    pre = (await source.observe([alone], NOW))["a/old"].roles[Role.PREFILL]
    assert pre.arrival_rate == pytest.approx(10.0) and pre.prompt_tokens_rate == pytest.approx(1000)


async def test_starting_pods_are_expected_to_be_silent(source: PrometheusMetricsSource) -> None:
    """A pod that is not Ready yet (``PoolQuery.unready``) and exports nothing flags neither Partial nor
    Missing; a silent Ready pod still does."""
    q = dataclasses.replace(pq("f/st", "faults", both=["part0", "gone0"]), unready=frozenset({"gone0"}))
    role = (await source.observe([q], NOW))["f/st"].roles[Role.BOTH]
    assert not role.flags and role.reporting == 1 and role.queue_depth == pytest.approx(2)
    q = dataclasses.replace(pq("f/st2", "faults", both=["gone0", "gone1"]), unready=frozenset({"gone0", "gone1"}))
    role = (await source.observe([q], NOW))["f/st2"].roles[Role.BOTH]
    assert not role.flags and role.queue_depth is None and any("Ready" in n for n in role.notes)
    q = dataclasses.replace(pq("f/st3", "faults", both=["part0", "gone0"]), unready=frozenset({"part0"}))
    assert DataFlag.PARTIAL in (await source.observe([q], NOW))["f/st3"].roles[Role.BOTH].flags


async def test_partial_role_counts_reporting_pods(source: PrometheusMetricsSource) -> None:
    role = (await source.observe([pq("f/p", "faults", both=["part0", "gone0"])], NOW))["f/p"].roles[Role.BOTH]
    assert role.reporting == 1 and role.queue_depth == pytest.approx(2)


async def test_idle_pool_has_unknown_latency_but_is_trustworthy(source: PrometheusMetricsSource) -> None:
    obs = (await source.observe([pq("f/i", "faults", both=["idle0"])], NOW))["f/i"]
    role = obs.roles[Role.BOTH]
    assert role.ttft is None and role.queue_depth == 0.0
    assert DataFlag.MISSING not in role.flags and DataFlag.NOT_FINITE not in role.flags
    assert any("no requests" in n for n in role.notes)


INJECTION_NAMESPACES = ['"} or vector(1) or {', "a.b", "a\\b", "weird\u2028ns"]


async def test_label_values_are_escaped(source: PrometheusMetricsSource) -> None:
    queries = [
        pq("i/1", '"} or vector(1) or {', both=['x"\\\n✓']),
        pq("i/2", "a.b", both=["r0"]),
        pq("i/3", "a\\b", both=["r1"]),
        pq("i/4", "weird\u2028ns", both=["r2"]),
    ]
    obs = await source.observe(queries, NOW)
    assert [obs[k].roles[Role.BOTH].queue_depth for k in ("i/1", "i/2", "i/3", "i/4")] == [11, 21, 41, 51]
    assert all(o.trustworthy for o in obs.values())
    # The batched selector matches exactly the requested namespaces: "a.b" must not match "axb".
    group = _Group(_GroupKey("vllm", (), "namespace", "pod", 60.0), ENGINES["vllm"], queries)
    reply = await source.query(build_queries(group)["gauges"], NOW)
    assert {s["metric"]["namespace"] for s in reply} == set(INJECTION_NAMESPACES)


async def test_invalid_query_is_reported_for_that_pool_only(source: PrometheusMetricsSource) -> None:
    good = pq("a/ok", "vllm-a", prefill=["p0"])
    bad = PoolQuery(
        key="a/bad",
        namespace="vllm-a",
        pool="bad",
        engine="vllm",
        pods_by_role={Role.BOTH: ["p0"]},
        percentiles={},
        window_s=60,
        label_overrides={"pod": 'pod"} or vector(1)'},
    )
    unknown = PoolQuery(
        key="a/unk",
        namespace="vllm-a",
        pool="u",
        engine="tgi",
        pods_by_role={Role.BOTH: ["p0"]},
        percentiles={},
        window_s=60,
    )
    obs = await source.observe([good, bad, unknown], NOW)
    assert obs["a/ok"].trustworthy
    assert not obs["a/bad"].source_ok and "label name" in obs["a/bad"].error
    assert not obs["a/unk"].source_ok and "unknown engine" in obs["a/unk"].error
    assert obs["a/unk"].roles[Role.BOTH].flags == {DataFlag.ERROR}


async def test_metric_override(source: PrometheusMetricsSource) -> None:
    q = PoolQuery(
        key="o/o",
        namespace="vllm-a",
        pool="o",
        engine="vllm",
        pods_by_role={Role.BOTH: ["p0", "p1"]},
        percentiles={},
        window_s=60,
        metric_overrides={"queue_depth": "vllm:num_requests_running"},
    )
    role = (await source.observe([q], NOW))["o/o"].roles[Role.BOTH]
    assert role.queue_depth == pytest.approx(10)


async def test_batched_query_count_does_not_grow_with_pools(server: PrometheusServer) -> None:
    proxy = FaultProxy(server.url)
    await proxy.start()
    try:
        async with PrometheusMetricsSource(PrometheusSettings(url=proxy.url)) as src:
            await src.observe([pq("a/0", "vllm-a", prefill=["p0", "p1"], decode=["d0", "d1"])], NOW)
            one = proxy.query_count
            proxy.requests.clear()
            many = [pq(f"a/{i}", "vllm-a", prefill=["p0", "p1"], decode=["d0", "d1"]) for i in range(50)]
            many += [pq(f"b/{i}", "vllm-b", both=["b0", "b1"]) for i in range(50)]
            many += [pq(f"f/{i}", "faults", both=["part0"]) for i in range(50)]
            obs = await src.observe(many, NOW)
            assert proxy.query_count == one == len(Signal) - 3 + 2  # 6 non-gauge signals + gauges + heartbeat
            assert obs["a/49"].roles[Role.PREFILL].ttft == pytest.approx(TTFT_P95)
            assert obs["b/3"].roles[Role.BOTH].itl == pytest.approx(ITL_P95)
            # A second rate window is a second query set, no more.
            proxy.requests.clear()
            await src.observe([*many, pq("w/0", "vllm-a", window=120, prefill=["p0"])], NOW)
            assert proxy.query_count == 2 * one
    finally:
        await proxy.stop()


async def test_history_for_warm_start(source: PrometheusMetricsSource) -> None:
    h = await source.history(pq("hist/h", "hist", both=["h0"]), T0 - 3000, T0, 300)
    assert len(h.time) == 11 and h.time[0] == T0 - 3000
    # The counter is 0.5 t² / 600 (t seconds since the start); rate() over [t − 60, t] is its mean slope
    # there, (t − 30) / 600 requests/s.
    expected = (h.time - (T0 - 3600) - 30) / 600
    assert h.arrival_rate == pytest.approx(expected, rel=1e-6)
    assert h.prompt_tokens_rate == pytest.approx([80.0] * 11)
    assert h.generation_tokens_rate == pytest.approx([30.0] * 11)
