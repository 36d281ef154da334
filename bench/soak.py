"""Compressed soak: 1,000 InferenceAutoscalers × 2 roles, one controller process, many control ticks.

    PYTHONPATH=. python bench/soak.py [--n 1000] [--interval 3] [--duration 480]

The local control plane (``localcluster``: upstream etcd, kube-apiserver and kube-controller-manager, whose
Deployment and ReplicaSet controllers create and delete the Pods) is populated with the same objects as
``bench/controller_scale.py`` (N pools, 2N Deployments of one replica, N InferenceAutoscalers, over 10
namespaces); a kubelet stand-in in the driver binds those Pods and makes them Ready at once. The controller runs
in its own process with the **real control core**
(``ProfilePolicy``, the same object ``inference-autoscaler run`` uses) and a metrics source whose load moves
every tick (a slow sine per resource, phase-shifted, so forecasts, PID state, stabilisation windows, scale
actions, status writes and Events all churn). Time is compressed by running ``--interval`` seconds per tick
instead of the default 15 s: every resource is reconciled once per tick, so ``ticks × 15 s`` is the operating
time the run stands for (reported as ``equivalent_minutes``).

The driver samples the controller's RSS (``/proc/<pid>/status`` VmRSS) every 5 s and prints, as one JSON
line: RSS after the cold tick, at the end, the maximum, the least-squares slope over the second half (MB per
equivalent hour), reconciles, errors and scale actions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def _worker(kubeconfig: str, duration: float) -> dict[str, Any]:
    from autoscaler.adapters.cluster import KubeCluster
    from autoscaler.adapters.kube import KubeTransport, new_api_client
    from autoscaler.controller.command import ProfilePolicy
    from autoscaler.controller.manager import Controller
    from autoscaler.core.types import Observation, RoleObservation
    from autoscaler.ports import PoolQuery
    from autoscaler.settings import ControllerSettings

    class MovingLoad:
        """Per resource: arrival rate 2..12 req/s on a sine with a 40-tick period and its own phase."""

        def __init__(self) -> None:
            self.calls = 0
            self.t0 = time.time()

        async def observe(self, queries: Sequence[PoolQuery], now: float) -> Mapping[str, Observation]:
            self.calls += 1
            out = {}
            for q in queries:
                phase = (zlib.crc32(q.key.encode()) % 1000) / 1000 * 2 * math.pi
                rate = 7.0 + 5.0 * math.sin(2 * math.pi * (now - self.t0) / (40 * 15.0) + phase)
                out[q.key] = Observation(
                    time=now,
                    roles={
                        r: RoleObservation(
                            replicas=0, ready=0, ttft=0.3 + 0.05 * rate, itl=0.03 + 0.003 * rate,
                            queue_depth=rate, running=4 * rate, kv_utilization=min(0.95, 0.05 * rate),
                            arrival_rate=rate, prompt_tokens_rate=800 * rate, generation_tokens_rate=150 * rate,
                            reporting=None,
                        )
                        for r in q.pods_by_role
                    },
                )
            return out

    settings = ControllerSettings(kubeconfig=kubeconfig, leader_elect=False, health_port=-1, log_format="json")
    transport = KubeTransport(await new_api_client(kubeconfig), timeout_s=60.0)
    load = MovingLoad()
    controller = Controller(settings, KubeCluster(transport), ProfilePolicy(), lambda spec: ("soak", load), clock=None)
    await controller.start()
    print(json.dumps({"event": "started"}), flush=True)
    await asyncio.sleep(duration)
    stats = controller.stats
    result = {
        "reconciles": stats.reconciles,
        "errors": stats.errors,
        "scale_actions": controller.reconciler.scale_actions,
        "metrics_calls": load.calls,
        "p50_reconcile_ms": 1000 * statistics.median(stats.latencies[-10000:]) if stats.latencies else None,
    }
    await controller.stop()
    await transport.close()
    return result


NS_COUNT = 10  # resources are spread over this many namespaces (as in bench/controller_scale.py)


def _objects(n: int, interval: float) -> list[dict[str, Any]]:
    """Per resource: its InferencePool, prefill and decode Deployments (one replica each), its InferenceAutoscaler."""
    out: list[dict[str, Any]] = []
    for k in range(n):
        ns, name = f"bench-{k % NS_COUNT}", f"model-{k}"
        out.append({"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"selector": {"matchLabels": {"app": name}}, "targetPorts": [{"number": 8000}],
                             "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": 9002}}}})
        for role in ("prefill", "decode"):
            labels = {"app": name, "llm-d.ai/role": role, "workload": f"{name}-{role}"}
            out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": f"{name}-{role}", "namespace": ns},
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"workload": f"{name}-{role}"}},
                                 "template": {"metadata": {"labels": labels},
                                              "spec": {"containers": [{"name": "vllm", "image": "vllm"}]}}}})
        out.append({"apiVersion": "autoscaler.inference.dev/v1alpha1", "kind": "InferenceAutoscaler",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"poolRef": {"name": name},
                             "roles": {"prefill": {"minReplicas": 1, "maxReplicas": 8},
                                       "decode": {"minReplicas": 1, "maxReplicas": 8}},
                             "slo": {"ttft": {"target": "1s"}, "itl": {"target": "100ms"}},
                             "metrics": {"prometheus": {"url": "http://prometheus:9090"}},
                             "controlInterval": f"{interval:g}s"}})
    return out


def _populate(plane: Any, n: int, interval: float, threads: int = 4) -> None:
    """Create the namespaces and every object (``threads`` clients in parallel: the apiserver is the limit)."""
    from concurrent.futures import ThreadPoolExecutor

    from localcluster.client import Kube
    from localcluster.crds import install_crds

    def new_kube() -> Kube:
        return Kube(plane.url, plane.admin_token, str(plane.ca.path))

    admin = new_kube()
    try:
        install_crds(admin)
        for i in range(NS_COUNT):
            admin.ensure_namespace(f"bench-{i}")
    finally:
        admin.close()
    objs = _objects(n, interval)

    def create(share: list[dict[str, Any]]) -> None:
        kube = new_kube()
        try:
            for obj in share:
                kube.create(obj)
        finally:
            kube.close()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, [objs[i::threads] for i in range(threads)]))


class _KubeletThread:
    """The kubelet stand-in on its own event loop in a thread of the driver (Pods Ready at once)."""

    def __init__(self, url: str, token: str, ca_file: str) -> None:
        from localcluster.kubelet import KubeletStandIn

        self.kubelet = KubeletStandIn(url, token, ca_file, ready_after=0.0)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._started.wait(60):
            raise RuntimeError("kubelet stand-in did not start")

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self.kubelet.start()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.kubelet.stop()

    def stop(self) -> None:
        """Stop the stand-in and its loop (waits for both)."""
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()


def _pods(plane: Any) -> tuple[list[dict[str, Any]], int]:
    """Every bench Pod on the plane, and the sum of the bench Deployments' ``spec.replicas``."""
    from localcluster.client import Kube

    kube = Kube(plane.url, plane.admin_token, str(plane.ca.path))
    try:
        pods = [p for p in kube.list_objects("v1", "Pod") if p["metadata"]["namespace"].startswith("bench-")]
        deploys = [d for d in kube.list_objects("apps/v1", "Deployment")
                   if d["metadata"]["namespace"].startswith("bench-")]
        return pods, sum(int(d["spec"]["replicas"]) for d in deploys)
    finally:
        kube.close()


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _wait_pods_ready(plane: Any, count: int, timeout_s: float = 600.0) -> None:
    """Wait until kube-controller-manager has created ``count`` Pods and the stand-in made them all Ready."""
    deadline = time.monotonic() + timeout_s
    while True:
        pods, _ = _pods(plane)
        ready = sum(1 for p in pods if _ready(p))
        if ready >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ready}/{count} Pods Ready after {timeout_s:g} s")
        time.sleep(1.0)


def _count_pods(plane: Any, settle_s: float = 30.0) -> dict[str, int]:
    """Pods at the end (after the ReplicaSets caught up with the last scale actions, up to ``settle_s``)."""
    deadline = time.monotonic() + settle_s
    while True:
        pods, replicas = _pods(plane)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in live if _ready(p))
        if (len(live) == replicas == ready) or time.monotonic() > deadline:
            return {"pods_end": len(live), "pods_ready_end": ready, "deployment_replicas_end": replicas}
        time.sleep(1.0)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="InferenceAutoscalers (× 2 roles)")
    parser.add_argument("--interval", type=float, default=3.0, help="control interval, seconds (compressed)")
    parser.add_argument("--duration", type=float, default=480.0, help="seconds of controller run time")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_result = asyncio.run(_worker(args.kubeconfig, args.duration))
        print(json.dumps(worker_result), flush=True)
        return 0

    from localcluster.plane import ControlPlane, PlaneOptions

    # The plane is started on this (the main) thread: its children die with the thread that started them.
    with ControlPlane(PlaneOptions(kcm_qps=200)) as plane, tempfile.TemporaryDirectory() as tmp:
        assert plane.ca is not None
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        kubelet = _KubeletThread(plane.url, plane.admin_token, str(plane.ca.path))
        worker: subprocess.Popen[str] | None = None
        try:
            _populate(plane, args.n, args.interval)
            kubeconfig = str(plane.kubeconfig(Path(tmp) / "kubeconfig"))
            _wait_pods_ready(plane, 2 * args.n)
            # The worker's stdout (its JSON logs, then the result) goes to a file: a pipe nobody drains
            # would fill up and block the controller on its next log line.
            out_path = Path(tmp) / "worker.out"
            with out_path.open("w") as sink:
                worker = subprocess.Popen(
                    [sys.executable, __file__, "--worker", "--kubeconfig", kubeconfig,
                     "--duration", str(args.duration)],
                    cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True, env=env,
                )
            while worker.poll() is None and '"event": "started"' not in out_path.read_text():
                time.sleep(0.2)  # caches synced
            t0 = time.monotonic()
            samples: list[tuple[float, float]] = []
            while worker.poll() is None:
                try:
                    samples.append((time.monotonic() - t0, _rss_mb(worker.pid)))
                except (FileNotFoundError, ProcessLookupError):
                    break
                time.sleep(5.0)
            worker.wait()
            out = out_path.read_text().strip().splitlines()
            result: dict[str, Any] = json.loads(out[-1])
            pods = _count_pods(plane)
        finally:
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
            kubelet.stop()
    samples = [s for s in samples if not math.isnan(s[1])]
    # "start" = after the cold tick (every resource reconciled and written once): the first sample at least
    # 20 % into the run; growth is judged on the second half.
    warm = [s for s in samples if s[0] >= 0.2 * args.duration] or samples
    half = [s for s in samples if s[0] >= 0.5 * args.duration] or samples
    xs, ys = [s[0] for s in half], [s[1] for s in half]
    slope = 0.0
    if len(xs) >= 2:
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0
    ticks = result["reconciles"] / args.n
    report = {
        "n": args.n,
        "interval_s": args.interval,
        "run_s": args.duration,
        "ticks_per_resource": round(ticks, 1),
        "equivalent_minutes_at_15s": round(ticks * 15 / 60, 1),
        "rss_after_cold_tick_mb": round(warm[0][1], 1),
        "rss_end_mb": round(samples[-1][1], 1),
        "rss_max_mb": round(max(y for _, y in samples), 1),
        "rss_slope_second_half_mb_per_equiv_hour": round(slope * args.interval / 15 * 3600, 2),
        **result,
        **pods,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
