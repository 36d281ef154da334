"""Queries per control tick and wall time per tick: batched source vs one query set per resource.

Backfills ``--pools`` pools × 8 pods (4 prefill, 4 decode) of vLLM V1 series into a temporary TSDB with
``promtool tsdb create-blocks-from openmetrics``, starts Debian's ``/usr/bin/prometheus`` on it, then times

* **batched**: :class:`PrometheusMetricsSource` observing every pool in one call (one query per signal);
* **per-resource**: the way KEDA's Prometheus scaler and the HPA Prometheus adapter work — every resource
  (here: every pool and role) runs its own queries with its pods in the selector, e.g.
  ``histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{namespace="ns",
  pod=~"a|b|c|d"}[1m])))``, through the same client, thread pool and concurrency.

Reports the median of ``--repeat`` ticks for each, and the ratios. Usage::

    PYTHONPATH=. python bench/prometheus_scale.py [--pools 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autoscaler.adapters.prometheus import PrometheusMetricsSource, PrometheusSettings
from autoscaler.adapters.promql import regex_alternation, string_literal
from autoscaler.core.types import Role
from autoscaler.ports import PoolQuery

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures.prometheus import PrometheusServer

T0 = 1_700_000_000
STEP = 15
SAMPLES = 6  # 75 s of data: enough for a 60 s rate window at the query time
NOW = T0 + STEP * (SAMPLES - 1)
TTFT_BUCKETS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, math.inf)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 1.0, 2.5, math.inf)
E2E_BUCKETS = (0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, math.inf)
PODS_PER_ROLE = 4
POOLS_PER_NAMESPACE = 20


def pool_pods(i: int) -> dict[Role, list[str]]:
    return {
        role: [f"pool{i:04d}-{role.value}-{k}" for k in range(PODS_PER_ROLE)]
        for role in (Role.PREFILL, Role.DECODE)
    }


def namespace(i: int) -> str:
    return f"team-{i // POOLS_PER_NAMESPACE:03d}"


def write_openmetrics(path: Path, pools: int) -> int:
    """Write every series of every pod; returns the number of series."""
    times = [T0 + STEP * k for k in range(SAMPLES)]
    n = 0
    with path.open("w", encoding="utf-8") as out:
        for i in range(pools):
            ns = namespace(i)
            for role, pods in pool_pods(i).items():
                for j, pod in enumerate(pods):
                    lab = f'namespace="{ns}",pod="{pod}",model_name="m",engine="0"'
                    load = 1.0 + (i * 7 + j) % 5
                    for name, value in (
                        ("vllm:num_requests_waiting", load),
                        ("vllm:num_requests_running", 2 * load),
                        ("vllm:kv_cache_usage_perc", 0.1 * load),
                    ):
                        out.writelines(f"{name}{{{lab}}} {value} {t}\n" for t in times)
                        n += 1
                    for name, per_s in (
                        ("vllm:request_success_total", load),
                        ("vllm:prompt_tokens_total", 500 * load),
                        ("vllm:generation_tokens_total", 80 * load),
                    ):
                        out.writelines(f"{name}{{{lab}}} {100 + per_s * (t - T0)} {t}\n" for t in times)
                        n += 1
                    for name, bounds in (
                        ("vllm:time_to_first_token_seconds", TTFT_BUCKETS),
                        ("vllm:inter_token_latency_seconds", ITL_BUCKETS),
                        ("vllm:e2e_request_latency_seconds", E2E_BUCKETS),
                    ):
                        for b, le in enumerate(bounds):
                            le_text = "+Inf" if math.isinf(le) else repr(le)
                            per_s = load * min(b + 1, len(bounds) // 2 + role_offset(role))
                            out.writelines(
                                f'{name}_bucket{{{lab},le="{le_text}"}} {per_s * (t - T0)} {t}\n'
                                for t in times
                            )
                            n += 1
        out.write("# EOF\n")
    return n


def role_offset(role: Role) -> int:
    return 1 if role is Role.PREFILL else 3


def queries_for(pools: int) -> list[PoolQuery]:
    return [
        PoolQuery(
            key=f"{namespace(i)}/pool{i:04d}",
            namespace=namespace(i),
            pool=f"pool{i:04d}",
            engine="vllm",
            pods_by_role=pool_pods(i),
            percentiles={"ttft": 0.95, "itl": 0.95},
            window_s=60,
        )
        for i in range(pools)
    ]


def per_resource_promql(q: PoolQuery) -> list[str]:
    """The query set a per-resource adapter (KEDA ScaledObject, HPA adapter rule) runs for one pool."""
    out = []
    for pods in q.pods_by_role.values():
        sel = f"namespace={string_literal(q.namespace)}, pod=~{string_literal(regex_alternation(pods))}"
        for h in (
            "time_to_first_token_seconds",
            "inter_token_latency_seconds",
            "e2e_request_latency_seconds",
        ):
            out.append(f"histogram_quantile(0.95, sum by (le) (rate(vllm:{h}_bucket{{{sel}}}[60s])))")
        out.append(f"sum(vllm:num_requests_waiting{{{sel}}})")
        out.append(f"sum(vllm:num_requests_running{{{sel}}})")
        out.append(f"avg(vllm:kv_cache_usage_perc{{{sel}}})")
        out.append(f"max(vllm:kv_cache_usage_perc{{{sel}}})")
        for c in ("request_success_total", "prompt_tokens_total", "generation_tokens_total"):
            out.append(f"sum(rate(vllm:{c}{{{sel}}}[60s]))")
        out.append(f"count(timestamp(vllm:num_requests_running{{{sel}}}) > {NOW - 60})")
    return out


async def tick_batched(src: PrometheusMetricsSource, queries: list[PoolQuery]) -> tuple[float, int]:
    before = src.stats.queries
    start = time.perf_counter()
    obs = await src.observe(queries, NOW)
    elapsed = time.perf_counter() - start
    bad = [k for k, o in obs.items() if not o.trustworthy]
    if bad:
        raise SystemExit(
            f"batched tick returned untrustworthy data for {len(bad)} pools, e.g. "
            f"{bad[0]}: {obs[bad[0]].error or [r.notes for r in obs[bad[0]].roles.values()]}"
        )
    return elapsed, src.stats.queries - before


async def tick_per_resource(src: PrometheusMetricsSource, queries: list[PoolQuery]) -> tuple[float, int]:
    promql = [p for q in queries for p in per_resource_promql(q)]
    start = time.perf_counter()
    replies = await asyncio.gather(*(src.query(p, NOW) for p in promql))
    elapsed = time.perf_counter() - start
    if any(not r for r in replies):
        raise SystemExit("a per-resource query returned no data")
    return elapsed, len(promql)


async def run(url: str, pools: int, repeat: int, per_resource_pools: int) -> None:
    queries = queries_for(pools)
    settings = PrometheusSettings(url=url, timeout_s=60, max_concurrency=4)
    async with PrometheusMetricsSource(settings) as src:
        await tick_batched(src, queries[:1])  # warm the connection pool and Prometheus's caches
        batched = [await tick_batched(src, queries) for _ in range(repeat)]
        subset = queries[:per_resource_pools]
        per_res = [await tick_per_resource(src, subset) for _ in range(repeat)]
    b_time = statistics.median(t for t, _ in batched)
    b_queries = batched[0][1]
    p_time_subset = statistics.median(t for t, _ in per_res)
    scale = pools / len(subset)
    p_time = p_time_subset * scale
    p_queries = round(per_res[0][1] * scale)
    print(
        f"\n{pools} pools × {2 * PODS_PER_ROLE} pods, median of {repeat} ticks, "
        f"concurrency {settings.max_concurrency}"
    )
    print(f"{'mode':<28}{'queries/tick':>14}{'wall s/tick':>14}")
    print(f"{'batched (this source)':<28}{b_queries:>14}{b_time:>14.3f}")
    note = "" if len(subset) == pools else f" (measured on {len(subset)} pools, ×{scale:g})"
    print(f"{'one set per resource':<28}{p_queries:>14}{p_time:>14.3f}{note}")
    print(f"{'ratio per-resource/batched':<28}{p_queries / b_queries:>14.0f}{p_time / b_time:>14.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--per-resource-pools",
        type=int,
        default=0,
        help="pools to time per-resource on (0 = all); the result is scaled to --pools",
    )
    args = parser.parse_args()
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        raise SystemExit("needs /usr/bin/prometheus and /usr/bin/promtool (apt-get install prometheus)")
    root = Path(tempfile.mkdtemp(prefix="prom-bench-"))
    server = PrometheusServer(root, scrape_interval="1h")
    try:
        start = time.perf_counter()
        source = root / "data.om"
        series = write_openmetrics(source, args.pools)
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(server.tsdb)],
            check=True,
            capture_output=True,
        )
        source.unlink()
        print(f"backfilled {series:,} series × {SAMPLES} samples in {time.perf_counter() - start:.1f} s")
        server.start(timeout_s=120)
        asyncio.run(run(server.url, args.pools, args.repeat, args.per_resource_pools or args.pools))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
