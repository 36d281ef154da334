"""Controller scale benchmark: N InferenceAutoscalers × 2 roles on one controller process.

    PYTHONPATH=. python bench/controller_scale.py [--sizes 100,300,1000] [--interval 15] [--ticks 3]

For each N, a fresh emulated API server runs in its own process (with the workload simulator, so pods exist
and are watched), N pools + 2N Deployments + N InferenceAutoscalers are created over HTTP, and the controller
runs in a separate process (so its peak RSS is its own) with a constant metrics source and a small
proportional policy. Reported per N:

- cold tick: the first pass over every resource (every status written, every fleet scaled once);
- steady ticks (median over ``--ticks``): wall time of a full tick (from the aligned wake-up to the last
  reconcile's end), p50/p99 reconcile latency, API requests per tick and how many of them were writes
  (a steady fleet should need none: status is written only when it changes);
- peak RSS of the controller process.

Floor from issue 5: a full tick of 1,000 in ≤ 5 s on one core with ≤ 300 MB RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NS_COUNT = 10  # resources are spread over this many namespaces


# ------------------------------------------------------------------------------------------- worker process


def _queue_for(key: str) -> float:
    return float(5 + zlib.crc32(key.encode()) % 60)  # 5..64 queued → 1..7 replicas, stable per resource


async def _worker(kubeconfig: str, n: int, interval: float, ticks: int) -> dict[str, Any]:
    from autoscaler.adapters.cluster import KubeCluster
    from autoscaler.adapters.kube import KubeTransport, new_api_client
    from autoscaler.controller.manager import Controller
    from autoscaler.core.types import Decision, Observation, Reason, ReasonCode, Role, RoleObservation
    from autoscaler.ports import PoolQuery
    from autoscaler.settings import ControllerSettings

    class Metrics:
        def __init__(self) -> None:
            self.calls = 0

        async def observe(self, queries: Sequence[PoolQuery], now: float) -> Mapping[str, Observation]:
            self.calls += 1
            out = {}
            for q in queries:
                ro = RoleObservation(
                    replicas=0,
                    ready=0,
                    ttft=0.4,
                    itl=0.04,
                    queue_depth=_queue_for(q.key),
                    kv_utilization=0.5,
                    arrival_rate=3.0,
                )
                out[q.key] = Observation(time=now, roles={r: ro for r in q.pods_by_role})
            return out

    class Proportional:
        name = "proportional"

        def initial_state(self, spec: Any, now: float) -> None:
            return None

        def decide(self, spec: Any, obs: Observation, state: None, now: float) -> tuple[Decision, None]:
            desired = {}
            for role_name, rs in spec.roles.items():
                ro = obs.roles[Role(role_name)]
                want = math.ceil((ro.queue_depth or 0) / 10)
                desired[Role(role_name)] = max(rs.min_replicas, min(rs.max_replicas, want))
            return Decision(desired=desired, reasons=(Reason(ReasonCode.STEADY, "proportional"),)), None

    settings = ControllerSettings(
        kubeconfig=kubeconfig, leader_elect=False, health_port=-1, log_format="json"
    )
    transport = KubeTransport(await new_api_client(kubeconfig), timeout_s=60.0)
    metrics = Metrics()
    controller = Controller(settings, KubeCluster(transport), Proportional(), lambda spec: ("bench", metrics))
    spans: list[tuple[float, float]] = []
    requests_at: list[tuple[float, str, str]] = []
    transport.on_request = lambda method, path: requests_at.append((time.time(), method, path))
    inner = controller.reconciler.reconcile_once

    async def timed(key: str) -> float | None:
        t0 = time.time()
        try:
            return await inner(key)
        finally:
            spans.append((t0, time.time()))

    controller.reconciler.reconcile_once = timed  # type: ignore[method-assign]
    t_start = time.time()
    await controller.start()
    synced = time.time()
    # Cold tick: every worker starts at once after the caches sync.
    while len(spans) < n:  # noqa: ASYNC110 - polling a counter the timed wrapper appends to
        await asyncio.sleep(0.05)
    cold_end = max(e for _, e in spans[:n])
    cold_requests = [r for r in requests_at if synced <= r[0] <= cold_end]
    # One warm-up tick: it records the readiness reached after the cold tick's scale-ups.
    first_boundary = math.floor(cold_end / interval + 2) * interval
    await asyncio.sleep(first_boundary + ticks * interval - time.time() + 0.5 * interval)
    await controller.stop()
    await transport.close()

    steady = []
    for i in range(ticks):
        lo, hi = first_boundary + i * interval, first_boundary + (i + 1) * interval
        tick = [(s, e) for s, e in spans if lo <= s < hi]
        reqs = [r for r in requests_at if lo <= r[0] < hi]
        if len(tick) < n:
            continue
        steady.append(
            {
                "reconciles": len(tick),
                "full_tick_s": max(e for _, e in tick) - lo,
                "p50_ms": 1000 * statistics.median(e - s for s, e in tick),
                "p99_ms": 1000 * sorted(e - s for s, e in tick)[int(0.99 * (len(tick) - 1))],
                "requests": len(reqs),
                "writes": sum(1 for _, m, _ in reqs if m != "GET"),
            }
        )
    cold = [(s, e) for s, e in spans[:n]]
    return {
        "n": n,
        "startup_sync_s": synced - t_start,
        "cold_tick_s": cold_end - synced,
        "cold_p50_ms": 1000 * statistics.median(e - s for s, e in cold),
        "cold_p99_ms": 1000 * sorted(e - s for s, e in cold)[int(0.99 * (len(cold) - 1))],
        "cold_requests": len(cold_requests),
        "cold_writes": sum(1 for _, m, _ in cold_requests if m != "GET"),
        "metrics_calls": metrics.calls,
        "steady": steady,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ------------------------------------------------------------------------------------------------- driver


async def _populate(url: str, n: int, interval: float) -> None:
    import aiohttp

    headers = {"Authorization": "Bearer kubeemu-admin", "Content-Type": "application/json"}
    sem = asyncio.Semaphore(16)

    async with aiohttp.ClientSession(headers=headers) as session:

        async def post(path: str, body: dict[str, Any]) -> None:
            async with sem, session.post(url + path, data=json.dumps(body)) as resp:
                if resp.status not in (200, 201, 409):
                    raise RuntimeError(f"POST {path}: {resp.status} {await resp.text()}")

        for i in range(NS_COUNT):
            await post(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"bench-{i}"}},
            )
        jobs = []
        for k in range(n):
            ns, name = f"bench-{k % NS_COUNT}", f"model-{k}"
            jobs.append(
                post(
                    f"/apis/inference.networking.k8s.io/v1/namespaces/{ns}/inferencepools",
                    {
                        "apiVersion": "inference.networking.k8s.io/v1",
                        "kind": "InferencePool",
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {
                            "selector": {"matchLabels": {"app": name}},
                            "targetPorts": [{"number": 8000}],
                            "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": 9002}},
                        },
                    },
                )
            )
            for role in ("prefill", "decode"):
                labels = {"app": name, "llm-d.ai/role": role, "workload": f"{name}-{role}"}
                jobs.append(
                    post(
                        f"/apis/apps/v1/namespaces/{ns}/deployments",
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "metadata": {"name": f"{name}-{role}", "namespace": ns},
                            "spec": {
                                "replicas": 1,
                                "selector": {"matchLabels": {"workload": f"{name}-{role}"}},
                                "template": {
                                    "metadata": {"labels": labels},
                                    "spec": {"containers": [{"name": "vllm", "image": "vllm"}]},
                                },
                            },
                        },
                    )
                )
            jobs.append(
                post(
                    f"/apis/autoscaler.inference.dev/v1alpha1/namespaces/{ns}/inferenceautoscalers",
                    {
                        "apiVersion": "autoscaler.inference.dev/v1alpha1",
                        "kind": "InferenceAutoscaler",
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {
                            "poolRef": {"name": name},
                            "roles": {
                                "prefill": {"minReplicas": 1, "maxReplicas": 8},
                                "decode": {"minReplicas": 1, "maxReplicas": 8},
                            },
                            "slo": {"ttft": {"target": "1s"}, "itl": {"target": "100ms"}},
                            "metrics": {"prometheus": {"url": "http://prometheus:9090"}},
                            "controlInterval": f"{interval:g}s",
                        },
                    },
                )
            )
        await asyncio.gather(*jobs)


def _run_size(n: int, interval: float, ticks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = os.path.join(tmp, "kubeconfig")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.kubeemu",
                "--kubeconfig",
                kubeconfig,
                "--simulate-workloads",
                "--bookmark-interval",
                "30",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if "listening on" not in line:
                raise RuntimeError(f"emulator did not start: {line!r}")
            url = line.rsplit(" ", 1)[1].strip()
            asyncio.run(_populate(url, n, interval))
            time.sleep(2.0)  # let the workload simulator create the pods
            worker = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    "--kubeconfig",
                    kubeconfig,
                    "--n",
                    str(n),
                    "--interval",
                    str(interval),
                    "--ticks",
                    str(ticks),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=False,
            )
            if worker.returncode != 0:
                raise RuntimeError(f"controller process failed:\n{worker.stderr[-3000:]}")
            result: dict[str, Any] = json.loads(worker.stdout.strip().splitlines()[-1])
            return result
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,300,1000", help="comma-separated N values")
    parser.add_argument("--interval", type=float, default=15.0, help="control interval, seconds")
    parser.add_argument("--ticks", type=int, default=3, help="steady ticks measured per N (median reported)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import logging

        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        print(json.dumps(asyncio.run(_worker(args.kubeconfig, args.n, args.interval, args.ticks))))
        return 0
    print(
        f"{'N':>5} {'cold tick s':>11} {'cold req':>8} {'tick s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'req/tick':>8} {'writes':>6} {'RSS MB':>7}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        r = _run_size(n, args.interval, args.ticks)
        steady = r["steady"]
        med = (
            {
                k: statistics.median(t[k] for t in steady)
                for k in ("full_tick_s", "p50_ms", "p99_ms", "requests", "writes")
            }
            if steady
            else {}
        )
        print(
            f"{n:>5} {r['cold_tick_s']:>11.2f} {r['cold_requests']:>8} {med.get('full_tick_s', float('nan')):>7.2f} "
            f"{med.get('p50_ms', float('nan')):>7.2f} {med.get('p99_ms', float('nan')):>7.2f} "
            f"{med.get('requests', float('nan')):>8.0f} {med.get('writes', float('nan')):>6.0f} "
            f"{r['peak_rss_mb']:>7.1f}",
            flush=True,
        )
        print("      " + json.dumps(r), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
