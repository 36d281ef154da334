"""Controller scale benchmark: N InferenceAutoscalers × 2 roles on one controller process, real control plane.

    .venv/bin/python bench/controller_scale.py [--sizes 100,1000,5000] [--runs 3] [--interval 15] [--ticks 3]
                                               [--pods none|kubelet] [--api-timeout 60] [--threads 16]

For each N and run, a fresh local control plane (upstream etcd + kube-apiserver + kube-controller-manager,
:mod:`localcluster.plane`) is started, the CRDs installed, and N InferencePools + 2N Deployments + N
InferenceAutoscalers are created over HTTPS by a small thread pool, spread over ``NS_COUNT`` namespaces. The
controller runs in a separate process (so its peak RSS and CPU are its own) with a constant metrics source and
a small proportional policy, so what is measured is the controller's shell: caches, reconcile, status, /scale.

Pods (``--pods``): ``none`` (default) runs kube-controller-manager without the deployment and replicaset
controllers, so the Deployments create no Pods; the controller reads replicas from its Deployment cache and
pods only through the Pod cache's label index, which is then empty. ``kubelet`` runs the full controller set
and the kubelet stand-in (:mod:`localcluster.kubelet`), so every replica is a Pod that gets bound and Ready —
honest about the Pod watch, but on a 2-core machine only practical for small N. docs/operations.md says why.

Reported per run:

- populate: wall time to create the 4N objects;
- startup: the controller's first list of every cache;
- cold pass: from caches synced to the end of every resource's first reconcile (every status written, most
  fleets scaled once), with its requests, writes, request latency and mean requests in flight (sum of
  latencies / wall time) twice — as the controller saw them (including waiting for one of the HTTP client's
  100 pooled connections) and as kube-apiserver measured them (``apiserver_request_duration_seconds`` over
  writes, scraped before and after) — and the CPU used in that window by the controller, kube-apiserver and
  etcd (in cores, so 1.0 is one core busy the whole time): which of these is at its limit bounds the pass;
- steady tick (median over ``--ticks``): wall time from the aligned wake-up to the last reconcile's end,
  p50/p99 reconcile latency, API requests and writes per tick, controller CPU per tick;
- peak RSS (VmHWM) of the controller, kube-apiserver and etcd, and their RSS (VmRSS) at the end;
- the 1-minute load average (``/proc/loadavg``) at the start and end of the run: the machine is shared.

Each run prints one table row on stdout and its full JSON on stderr; ``--runs`` > 1 ends with the medians.
Bar from issue 17: a steady tick of 1,000 InferenceAutoscalers in ≤ 1 s on the real server.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NS_COUNT = 10  # resources are spread over this many namespaces
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------- worker process


def _queue_for(key: str) -> float:
    return float(5 + zlib.crc32(key.encode()) % 60)  # 5..64 queued → 1..7 replicas, stable per resource


def _cpu_between(samples: Sequence[tuple[float, float]], lo: float, hi: float) -> float:
    """CPU seconds used between wall times ``lo`` and ``hi``, interpolated from ``(wall, cpu)`` samples."""

    def at(t: float) -> float:
        if not samples:
            return 0.0
        if t <= samples[0][0]:
            return samples[0][1]
        for (t0, c0), (t1, c1) in itertools.pairwise(samples):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / max(t1 - t0, 1e-9)
        return samples[-1][1]

    return at(hi) - at(lo)


def _latency_summary(calls: Sequence[tuple[float, float, str]], lo: float, hi: float) -> dict[str, float]:
    """Median latency (ms) and mean requests in flight of the non-watch requests started in ``[lo, hi]``."""
    window = [(s, e) for s, e, _ in calls if lo <= s <= hi]
    if not window:
        return {"latency_p50_ms": 0.0, "in_flight_mean": 0.0}
    return {
        "latency_p50_ms": 1000 * statistics.median(e - s for s, e in window),
        "in_flight_mean": sum(e - s for s, e in window) / max(hi - lo, 1e-9),
    }


async def _server_write_seconds(kubeconfig: str) -> tuple[float, int]:
    """kube-apiserver's own ``apiserver_request_duration_seconds`` sum and count over every write (POST, PUT,
    PATCH, DELETE): the server-side time of the writes it has answered so far."""
    import ssl

    import aiohttp
    import yaml

    cfg = yaml.safe_load(await asyncio.to_thread(Path(kubeconfig).read_text))
    cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
    ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {user['token']}"}) as http,
        http.get(cluster["server"] + "/metrics", ssl=ctx) as resp,
    ):
        text = await resp.text()
    total, count = 0.0, 0
    for line in text.splitlines():
        if not line.startswith("apiserver_request_duration_seconds_") or not any(
            f'verb="{v}"' in line for v in ("POST", "PUT", "PATCH", "DELETE")
        ):
            continue
        if line.startswith("apiserver_request_duration_seconds_sum{"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("apiserver_request_duration_seconds_count{"):
            count += int(float(line.rsplit(" ", 1)[1]))
    return total, count


class _Metrics:
    """A constant metrics source: every pool reports the same latencies and a fixed queue per resource."""

    def __init__(self) -> None:
        self.calls = 0

    async def observe(self, queries: Sequence[Any], now: float) -> Mapping[str, Any]:
        from autoscaler.core.types import Observation, RoleObservation

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


class _Proportional:
    """One replica per 10 queued requests, within each role's bounds: a policy that costs next to nothing."""

    name = "proportional"

    def initial_state(self, spec: Any, now: float) -> None:
        return None

    def decide(self, spec: Any, obs: Any, state: None, now: float) -> tuple[Any, None]:
        from autoscaler.core.types import Decision, Reason, ReasonCode, Role

        desired = {}
        for role_name, rs in spec.roles.items():
            want = math.ceil((obs.roles[Role(role_name)].queue_depth or 0) / 10)
            desired[Role(role_name)] = max(rs.min_replicas, min(rs.max_replicas, want))
        return Decision(desired=desired, reasons=(Reason(ReasonCode.STEADY, "proportional"),)), None


class _Recorder:
    """Wraps the controller's transport and reconciler to record every request and reconcile, and samples
    the process's CPU time every 0.1 s."""

    def __init__(self, controller: Any, transport: Any) -> None:
        self.spans: list[tuple[float, float]] = []
        self.first: dict[
            str, tuple[float, float]
        ] = {}  # key → its first reconcile (the cold pass ends with the last)
        self.requests_at: list[tuple[float, str, str]] = []  # every request, watches included
        self.calls: list[tuple[float, float, str]] = []  # (start, end, method) of every non-watch request
        self.failures: dict[str, int] = {}  # failed requests by error (without the path)
        self.cpu: list[tuple[float, float]] = []
        reconciler = controller.reconciler
        transport.on_request = lambda method, path: self.requests_at.append((time.time(), method, path))
        send_once, reconcile_once = transport.send_once, reconciler.reconcile_once

        async def timed_send(request: Any) -> Any:
            t0 = time.time()
            try:
                return await send_once(request)
            except Exception as err:
                what = f"{type(err).__name__}: {str(err).split(': ', 1)[-1][:80]}"
                self.failures[what] = self.failures.get(what, 0) + 1
                raise
            finally:
                self.calls.append((t0, time.time(), request.method))

        async def timed(key: str) -> float | None:
            t0 = time.time()
            try:
                return await reconcile_once(key)
            finally:
                t1 = time.time()
                self.spans.append((t0, t1))
                self.first.setdefault(key, (t0, t1))

        transport.send_once = timed_send
        reconciler.reconcile_once = timed
        self._sampler = asyncio.create_task(self._sample_cpu())

    async def _sample_cpu(self) -> None:
        while True:
            self.cpu.append((time.time(), time.process_time()))
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        """Stop sampling."""
        self._sampler.cancel()

    def steady(
        self, first_boundary: float, interval: float, ticks: int, n: int
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Per complete tick: wall time, CPU, reconcile latencies, requests and writes; and the reconcile counts
        of ticks that did not cover every resource (backing off after errors)."""
        complete, incomplete = [], []
        for i in range(ticks):
            lo, hi = first_boundary + i * interval, first_boundary + (i + 1) * interval
            tick = [(s, e) for s, e in self.spans if lo <= s < hi]
            reqs = [r for r in self.requests_at if lo <= r[0] < hi]
            if len(tick) < n:
                incomplete.append(len(tick))
                continue
            end = max(e for _, e in tick)
            complete.append(
                {
                    "reconciles": len(tick),
                    "full_tick_s": end - lo,
                    "cpu_s": _cpu_between(self.cpu, lo, end),
                    "p50_ms": 1000 * statistics.median(e - s for s, e in tick),
                    "p99_ms": 1000 * sorted(e - s for s, e in tick)[int(0.99 * (len(tick) - 1))],
                    "requests": len(reqs),
                    "writes": sum(1 for _, m, _ in reqs if m != "GET"),
                }
            )
        return complete, incomplete


async def _worker(kubeconfig: str, n: int, interval: float, ticks: int, api_timeout: float) -> dict[str, Any]:
    from autoscaler.adapters.cluster import KubeCluster
    from autoscaler.adapters.kube import KubeTransport, new_api_client
    from autoscaler.controller.manager import Controller
    from autoscaler.settings import ControllerSettings

    settings = ControllerSettings(
        kubeconfig=kubeconfig, leader_elect=False, health_port=-1, log_format="json"
    )
    transport = KubeTransport(await new_api_client(kubeconfig), timeout_s=api_timeout)
    metrics = _Metrics()
    controller = Controller(settings, KubeCluster(transport), _Proportional(), lambda spec: ("bench", metrics))
    rec = _Recorder(controller, transport)
    t_start = time.time()
    server_before = await _server_write_seconds(kubeconfig)  # before the workers start: none in flight
    await controller.start()
    synced = time.time()
    # Cold pass: every worker starts at once after the caches sync. It ends when every resource has been
    # reconciled once (those done early reconcile again at the next tick boundaries meanwhile).
    while len(rec.first) < n:  # noqa: ASYNC110 - polling a map the timed wrapper fills
        await asyncio.sleep(0.05)
    cold_end = max(e for _, e in rec.first.values())
    server_after = await _server_write_seconds(kubeconfig)
    # One warm-up tick: it records what the cold pass's writes changed (the watch echoes them back).
    first_boundary = math.floor(cold_end / interval + 2) * interval
    await asyncio.sleep(first_boundary + ticks * interval - time.time() + 0.5 * interval)
    await controller.stop()
    await transport.close()
    rec.stop()
    steady, incomplete = rec.steady(first_boundary, interval, ticks, n)
    cold = list(rec.first.values())
    cold_requests = [r for r in rec.requests_at if synced <= r[0] <= cold_end]
    server_writes = server_after[1] - server_before[1]
    return {
        "n": n,
        "t_synced": synced,
        "t_cold_end": cold_end,
        "t_steady": [first_boundary, first_boundary + ticks * interval],
        "startup_sync_s": synced - t_start,
        "cold_tick_s": cold_end - synced,
        "cold_cpu_s": _cpu_between(rec.cpu, synced, cold_end),
        "cold_p50_ms": 1000 * statistics.median(e - s for s, e in cold),
        "cold_p99_ms": 1000 * sorted(e - s for s, e in cold)[int(0.99 * (len(cold) - 1))],
        "cold_requests": len(cold_requests),
        "cold_writes": sum(1 for _, m, _ in cold_requests if m != "GET"),
        **{f"cold_{k}": v for k, v in _latency_summary(rec.calls, synced, cold_end).items()},
        # What the apiserver itself measured for the cold pass's writes: mean latency, and the mean number
        # it was handling at once (sum of latencies / wall time), against what the client saw above.
        "cold_server_writes": server_writes,
        "cold_server_latency_ms": 1000 * (server_after[0] - server_before[0]) / max(server_writes, 1),
        "cold_server_in_flight": (server_after[0] - server_before[0]) / max(cold_end - synced, 1e-9),
        "metrics_calls": metrics.calls,
        "reconcile_errors": controller.stats.errors,
        "request_failures": rec.failures,
        "steady": steady,
        "steady_incomplete": incomplete,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ------------------------------------------------------------------------------------------------- objects


def _objects(n: int, interval: float) -> Iterator[dict[str, Any]]:
    """The 4N objects of the fleet: per resource its pool, two Deployments and the InferenceAutoscaler."""
    for k in range(n):
        ns, name = f"bench-{k % NS_COUNT}", f"model-{k}"
        yield {
            "apiVersion": "inference.networking.k8s.io/v1",
            "kind": "InferencePool",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "targetPorts": [{"number": 8000}],
                "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": 9002}},
            },
        }
        for role in ("prefill", "decode"):
            labels = {"app": name, "llm-d.ai/role": role, "workload": f"{name}-{role}"}
            yield {
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
            }
        yield {
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
        }


def _populate(new_kube: Callable[[], Any], n: int, interval: float, threads: int) -> float:
    """Create the fleet with ``threads`` clients in parallel (one HTTP session per thread); wall seconds."""
    local = threading.local()
    made: list[Any] = []

    def create(obj: dict[str, Any]) -> None:
        kube = getattr(local, "kube", None)
        if kube is None:
            kube = local.kube = new_kube()
            made.append(kube)
        kube.create(obj)

    t0 = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for fut in [pool.submit(create, obj) for obj in _objects(n, interval)]:
                fut.result()
    finally:
        for kube in made:
            kube.close()
    return time.monotonic() - t0


# ------------------------------------------------------------------------------------------------- driver


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of ``pid``, seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _proc_mem_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak RSS) and VmRSS of ``pid``, MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    return out


class _Sampler:
    """Samples the CPU time of the plane's processes every 0.25 s in a thread, for per-window CPU figures."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for name, pid in self.pids.items():
                self.samples[name].append((now, _proc_cpu_s(pid)))
            self._stop.wait(0.25)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def cores(self, name: str, lo: float, hi: float) -> float:
        """Mean cores used by ``name`` between wall times ``lo`` and ``hi``."""
        return _cpu_between(self.samples[name], lo, hi) / max(hi - lo, 1e-9)


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _run_size(
    n: int, interval: float, ticks: int, pods: str, threads: int, api_timeout: float
) -> dict[str, Any]:
    from localcluster.client import Kube
    from localcluster.crds import install_crds
    from localcluster.plane import CONTROLLERS, ControlPlane, PlaneOptions

    load_start = _loadavg()
    controllers = CONTROLLERS
    if pods == "none":  # Deployments stay objects: no ReplicaSets, no Pods (see the module docstring)
        controllers = tuple(
            c for c in CONTROLLERS if c not in ("deployment-controller", "replicaset-controller")
        )
    plane = ControlPlane(PlaneOptions(kcm_controllers=controllers, kcm_qps=200))
    with plane, tempfile.TemporaryDirectory() as tmp:
        assert plane.ca is not None
        ca = str(plane.ca.path)

        def new_kube() -> Kube:
            return Kube(plane.url, plane.admin_token, ca)

        admin = new_kube()
        try:
            install_crds(admin)
            for i in range(NS_COUNT):
                admin.ensure_namespace(f"bench-{i}")
        finally:
            admin.close()
        populate_s = _populate(new_kube, n, interval, threads)
        kubelet = _KubeletThread(plane.url, plane.admin_token, ca) if pods == "kubelet" else None
        kubeconfig = plane.kubeconfig(Path(tmp) / "kubeconfig")
        pids = {name: proc.popen.pid for name, proc in plane.procs.items()}
        try:
            if kubelet is not None:
                kubelet.wait_ready(2 * n, new_kube)
            with _Sampler(pids) as sampler:
                worker = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        "--kubeconfig",
                        str(kubeconfig),
                        "--n",
                        str(n),
                        "--interval",
                        str(interval),
                        "--ticks",
                        str(ticks),
                        "--api-timeout",
                        str(api_timeout),
                    ],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                    check=False,
                )
        finally:
            if kubelet is not None:
                kubelet.stop()
        if worker.returncode != 0:
            raise RuntimeError(f"controller process failed:\n{worker.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(worker.stdout.strip().splitlines()[-1])
        lo, hi = result["t_synced"], result["t_cold_end"]
        s_lo, s_hi = result["t_steady"]
        result.update(
            populate_s=populate_s,
            pods=pods,
            cold_cores={
                "controller": result["cold_cpu_s"] / max(hi - lo, 1e-9),
                **{name: sampler.cores(name, lo, hi) for name in pids},
            },
            steady_cores={name: sampler.cores(name, s_lo, s_hi) for name in pids},
            plane_mem_mb={name: _proc_mem_mb(pid) for name, pid in pids.items()},
            load_start=load_start,
            load_end=_loadavg(),
        )
        return result


class _KubeletThread:
    """The kubelet stand-in on its own event loop in a thread (the driver is otherwise synchronous)."""

    def __init__(self, url: str, token: str, ca_file: str) -> None:
        from localcluster.kubelet import KubeletStandIn

        self.loop = asyncio.new_event_loop()
        self.kubelet = KubeletStandIn(url, token, ca_file)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.kubelet.start(), self.loop).result(60)

    def wait_ready(self, count: int, new_kube: Callable[[], Any]) -> None:
        """Wait until ``count`` Pods are Ready (the Deployments' first replicas)."""
        from localcluster.client import wait_until

        kube = new_kube()
        try:
            wait_until(
                lambda: (
                    sum(
                        1
                        for p in kube.list_objects("v1", "Pod")
                        if any(
                            c["type"] == "Ready" and c["status"] == "True"
                            for c in (p.get("status") or {}).get("conditions") or []
                        )
                    )
                    >= count
                ),
                what=f"{count} Pods Ready",
                timeout_s=1800,
                interval_s=2.0,
            )
        finally:
            kube.close()

    def stop(self) -> None:
        """Stop the stand-in and its loop."""
        asyncio.run_coroutine_threadsafe(self.kubelet.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


# ------------------------------------------------------------------------------------------------- output

HEADER = (
    f"{'N':>5} {'load':>9} {'popul s':>7} {'sync s':>6} {'cold s':>6} {'cold req':>8} {'lat ms cl/srv':>13} "
    f"{'inflt cl/srv':>12} {'cores ctl/api/etcd':>18} {'tick s':>6} {'tick cpu':>8} {'p99 ms':>7} {'req/t':>5} "
    f"{'wr/t':>4} {'ctl MB':>6} {'api MB':>6} {'etcd MB':>7}"
)


def _steady_median(r: Mapping[str, Any], key: str) -> float:
    values = [t[key] for t in r["steady"]]
    return statistics.median(values) if values else float("nan")


def _row(r: Mapping[str, Any]) -> str:
    cores = r["cold_cores"]
    mem = r["plane_mem_mb"]
    return (
        f"{r['n']:>5} {r['load_start']:>4.1f}/{r['load_end']:<4.1f} {r['populate_s']:>7.1f} "
        f"{r['startup_sync_s']:>6.2f} {r['cold_tick_s']:>6.2f} {r['cold_requests']:>8} "
        f"{r['cold_latency_p50_ms']:>6.0f}/{r['cold_server_latency_ms']:<6.0f} "
        f"{r['cold_in_flight_mean']:>6.0f}/{r['cold_server_in_flight']:<5.0f} "
        f"{cores['controller']:>6.2f}/{cores['kube-apiserver']:.2f}/{cores['etcd']:.2f} "
        f"{_steady_median(r, 'full_tick_s'):>6.3f} {_steady_median(r, 'cpu_s'):>8.3f} "
        f"{_steady_median(r, 'p99_ms'):>7.1f} {_steady_median(r, 'requests'):>5.0f} "
        f"{_steady_median(r, 'writes'):>4.0f} {r['peak_rss_mb']:>6.1f} "
        f"{mem['kube-apiserver']['VmHWM']:>6.0f} {mem['etcd']['VmHWM']:>7.0f}"
    )


def _median_row(runs: Sequence[Mapping[str, Any]]) -> str:
    def med(get: Callable[[Mapping[str, Any]], float]) -> float:
        return statistics.median(get(r) for r in runs)

    return (
        f"median of {len(runs)}: cold {med(lambda r: r['cold_tick_s']):.2f} s, "
        f"steady tick {med(lambda r: _steady_median(r, 'full_tick_s')):.3f} s "
        f"(cpu {med(lambda r: _steady_median(r, 'cpu_s')):.3f} s), "
        f"requests/tick {med(lambda r: _steady_median(r, 'requests')):.0f}, "
        f"writes/tick {med(lambda r: _steady_median(r, 'writes')):.0f}, "
        f"controller RSS {med(lambda r: r['peak_rss_mb']):.0f} MB, "
        f"apiserver {med(lambda r: r['plane_mem_mb']['kube-apiserver']['VmHWM']):.0f} MB, "
        f"etcd {med(lambda r: r['plane_mem_mb']['etcd']['VmHWM']):.0f} MB peak"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated N values")
    parser.add_argument("--runs", type=int, default=3, help="runs per N, each on a fresh control plane")
    parser.add_argument("--interval", type=float, default=15.0, help="control interval, seconds")
    parser.add_argument(
        "--ticks", type=int, default=3, help="steady ticks measured per run (median reported)"
    )
    parser.add_argument(
        "--api-timeout",
        type=float,
        default=60.0,
        help="the controller's per-request timeout, seconds (its production default is 10)",
    )
    parser.add_argument(
        "--pods",
        choices=("none", "kubelet"),
        default="none",
        help="none: no Pods (KCM without deployment/replicaset controllers); "
        "kubelet: real Pods made Ready by the kubelet stand-in",
    )
    parser.add_argument("--threads", type=int, default=16, help="client threads creating the fleet")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import logging

        import structlog

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
        print(
            json.dumps(
                asyncio.run(_worker(args.kubeconfig, args.n, args.interval, args.ticks, args.api_timeout))
            )
        )
        return 0
    print(HEADER, flush=True)
    for n in (int(s) for s in args.sizes.split(",")):
        runs = []
        for _ in range(args.runs):
            r = _run_size(n, args.interval, args.ticks, args.pods, args.threads, args.api_timeout)
            runs.append(r)
            print(_row(r), flush=True)
            print("      " + json.dumps(r), file=sys.stderr, flush=True)
        if len(runs) > 1:
            print(f"{n:>5} {_median_row(runs)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
