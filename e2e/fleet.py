"""The fleet emulator: model servers of the cluster in a box, driven by the digital twin in accelerated time.

``python -m e2e.fleet CONFIG.json`` runs, per pool, one :class:`~autoscaler.sim.engine.Simulation` of the trace
segment against the real control plane, and

- **plays the kubelet** of the pool's Pods, which kube-controller-manager's Deployment and ReplicaSet controllers
  create and delete as ``spec.replicas`` changes (:class:`~localcluster.kubelet.KubeletStandIn` binds them to its
  Node and removes terminating ones). Every Pod is one simulated replica: a new Pod starts one, which serves after
  the profile's cold start in simulated time, and only then is its Pod made Running and Ready; a Pod the
  ReplicaSet deletes (``deletionTimestamp``) takes exactly its own replica away — a cold start is cancelled, a
  serving replica drains. The simulation's replica count therefore follows the Pods, and through them the
  Deployment; the Deployment's ``status`` is kube-controller-manager's own;
- **records every change of ``spec.replicas``** (the controller's or the HPA's ``/scale`` writes) for the result;
- **serves every replica's vLLM ``/metrics``** on one HTTP port at ``/metrics/<pool>/<replica>`` and writes a
  Prometheus ``file_sd`` file listing the serving replicas (labels ``namespace``, ``pod`` — the replica's Pod —
  and ``role``), rewritten atomically whenever the set changes.

At start-up it waits until the Deployments' initial Pods exist, maps them to the simulation's initial (warm)
replicas and makes them Ready; only then does the clock start.

Accelerated time (see ``e2e/README.md``): the twin advances ``speed`` simulated seconds per wall second. Counters
and histogram counts/sums are served divided by ``speed``, so that Prometheus's ``rate()`` over wall time reads
per *simulated* second — request and token rates mean what they mean in the real system; gauges and latency
values (a TTFT of 400 ms is 400 ms of model-server physics) are served unchanged.

When every pool's simulation has finished (all requests of the segment served), it writes ``result.json`` with
each pool's ground truth (per-request SLO attainment, GPU-hours, the replica time series) and keeps serving until
SIGTERM. ``GET /status`` reports simulated time and progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.catalog import load_profile
from autoscaler.controller.command import observation_dict
from autoscaler.core.types import Decision, Observation, Role
from autoscaler.sim.config import Mode, RoleShape, SimConfig
from autoscaler.sim.engine import Simulation
from autoscaler.sim.exporter import CONTENT_TYPE, render_replica
from autoscaler.sim.fleet import Replica, ReplicaState
from autoscaler.sim.traces import bundled_trace_path, load_trace
from localcluster.kubelet import KubeletStandIn

log = logging.getLogger("e2e.fleet")


class FollowPolicy:
    """The twin's own control step does nothing: replica counts come from the API server (the controller).

    It keeps what the twin's own :class:`~autoscaler.sim.signals.SignalStore` observed at each of its control
    instants (``observations``: simulated time → Observation), the reference against which the controller's
    view through Prometheus is compared.
    """

    name = "cluster-in-a-box"

    def __init__(self) -> None:
        self.observations: list[tuple[float, Observation]] = []

    def initial_state(self, spec: object, now: float) -> None:
        return None

    def decide(self, spec: object, observation: Observation, state: None, now: float) -> tuple[Decision, None]:
        self.observations.append((now, observation))
        return Decision(desired={}, reasons=()), None


def scaled_exposition(text: bytes, factor: float) -> bytes:
    """``text`` with counter and histogram samples divided by ``factor`` (rates per simulated second)."""

    class _Collector:
        def collect(self) -> Any:
            for fam in text_string_to_metric_families(text.decode()):
                if fam.type not in ("counter", "histogram"):
                    yield fam
                    continue
                out = Metric(fam.name, fam.documentation, fam.type)
                for s in fam.samples:
                    if s.name.endswith("_created"):
                        continue
                    out.add_sample(s.name, s.labels, s.value / factor)
                yield out

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())  # type: ignore[arg-type]
    return generate_latest(registry)


@dataclass
class Pool:
    """One InferencePool's model servers, and which Pod is which simulated replica."""

    name: str
    namespace: str
    deployments: dict[Role, str]
    selectors: dict[Role, dict[str, str]]  # each Deployment's spec.selector.matchLabels
    sim: Simulation
    desired: dict[Role, int] = field(default_factory=dict)  # spec.replicas as last seen
    by_pod: dict[str, Replica] = field(default_factory=dict)  # live Pod uid → its replica
    pod_names: dict[int, str] = field(default_factory=dict)  # replica uid → its Pod's name (kept after it goes)
    pod_ready: set[str] = field(default_factory=set)  # Pod uids whose latest object is Ready
    ready_asked: dict[str, float] = field(default_factory=dict)  # Pod uid → monotonic time make_ready was asked
    scale_log: list[dict[str, Any]] = field(default_factory=list)

    def pod_name(self, rep: Replica) -> str:
        return self.pod_names.get(rep.uid, f"{self.deployments[rep.role]}-{rep.name}")

    def role_of(self, labels: dict[str, str]) -> Role | None:
        """The role whose Deployment selects a Pod with these labels, if any."""
        for role, selector in self.selectors.items():
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                return role
        return None


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FleetEmulator:
    """All pools of one box; see the module docstring. ``cfg`` is the JSON the harness writes."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.speed = float(cfg["speed"])
        self.namespace = cfg["namespace"]
        self.file_sd = Path(cfg["file_sd"])
        self.result_path = Path(cfg["result"])
        self.host = "127.0.0.1"
        self.port = int(cfg.get("port", 0))
        tr = cfg["trace"]
        self.trace = load_trace(
            bundled_trace_path(tr["name"]), start_s=tr["start_s"], end_s=tr["end_s"],
            rate_scale=tr.get("rate_scale", 1.0), seed=tr.get("seed", 0),
        )
        self.profile = load_profile(cfg["profile"])
        self.pools: dict[str, Pool] = {}
        self.api: client.ApiClient | None = None
        self.sim_t = 0.0
        self.done = False
        self.wall0_unix = time.time()  # Unix time of simulated t=0 (set again when the clock starts)
        self._sd_text = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.kubelet: KubeletStandIn | None = None

    # -------------------------------------------------------------------------------- setup

    def _new_sim(self, initial: dict[Role, int]) -> Simulation:
        c = self.cfg
        sim_cfg = SimConfig(
            mode=Mode.DISAGGREGATED,
            roles={r: RoleShape(initial=n, min_replicas=0, max_replicas=10_000) for r, n in initial.items()},
            slo_ttft_s=c["slo"]["ttft_s"],
            slo_itl_s=c["slo"]["itl_s"],
            slo_percentile=c["slo"]["percentile"],
            # The twin's own series are recorded every simulated control interval (ground truth per interval).
            control_interval_s=c["sim_interval_s"],
            scrape_interval_s=c["sim_interval_s"],
            rate_window_s=4 * c["sim_interval_s"],
        )
        return Simulation(self.trace, self.profile, sim_cfg, FollowPolicy())

    async def _read_pools(self) -> None:
        assert self.api is not None
        apps = client.AppsV1Api(self.api)
        for p in self.cfg["pools"]:
            deployments = {Role(r): name for r, name in p["deployments"].items()}
            initial: dict[Role, int] = {}
            selectors: dict[Role, dict[str, str]] = {}
            for role, name in deployments.items():
                d = await apps.read_namespaced_deployment(name, self.namespace)
                initial[role] = int(d.spec.replicas or 0)
                selectors[role] = dict(d.spec.selector.match_labels or {})
            pool = Pool(p["name"], self.namespace, deployments, selectors, self._new_sim(initial))
            pool.desired = dict(initial)
            self.pools[pool.name] = pool

    # -------------------------------------------------------------------------------- recording /scale

    async def _watch_deployments(self) -> None:
        assert self.api is not None
        apps = client.AppsV1Api(self.api)
        owners = {
            name: (pool, role) for pool in self.pools.values() for role, name in pool.deployments.items()
        }
        rv = ""
        while True:
            try:
                if not rv:
                    lst = await apps.list_namespaced_deployment(self.namespace)
                    rv = lst.metadata.resource_version
                    for d in lst.items:
                        self._on_deployment(owners, d)
                w = watch.Watch()
                async with w.stream(
                    apps.list_namespaced_deployment, self.namespace, resource_version=rv, timeout_seconds=60
                ) as stream:
                    async for ev in stream:
                        obj = ev["object"]
                        rv = obj.metadata.resource_version
                        self._on_deployment(owners, obj)
            except ApiException as err:
                if err.status == 410:
                    rv = ""  # re-list
                    continue
                log.warning("deployment watch failed: %s", err)
                await asyncio.sleep(0.5)
            except (TimeoutError, OSError) as err:
                log.warning("deployment watch dropped: %s", err)
                await asyncio.sleep(0.5)

    def _on_deployment(self, owners: dict[str, tuple[Pool, Role]], d: Any) -> None:
        hit = owners.get(d.metadata.name)
        if hit is None or d.spec is None:
            return
        pool, role = hit
        want = int(d.spec.replicas if d.spec.replicas is not None else 1)
        if pool.desired.get(role) != want:
            pool.scale_log.append(
                {"sim_t": self.sim_t, "wall": time.time(), "role": role.value,
                 "before": pool.desired.get(role), "after": want}
            )
            pool.desired[role] = want

    # -------------------------------------------------------------------------------- the clock

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wall0 = loop.time()
        self.wall0_unix = time.time()
        tick = float(self.cfg.get("tick_s", 0.1))
        while True:
            self.sim_t = (loop.time() - wall0) * self.speed
            for pool in self.pools.values():
                if not pool.sim.finished:
                    pool.sim.advance(self.sim_t)
            self._sync_ready()
            self._write_file_sd()
            if not self.done and all(p.sim.finished for p in self.pools.values()):
                self.done = True
                self._write_result()
            await asyncio.sleep(tick)

    # -------------------------------------------------------------------------------- pods ↔ replicas

    def _on_pod(self, pod: dict[str, Any], gone: bool) -> None:
        """Every Pod the kubelet stand-in sees: a new one starts a replica, a terminating one ends its own."""
        md = pod["metadata"]
        if md.get("namespace") != self.namespace:
            return
        labels = md.get("labels") or {}
        hit = next(((p, r) for p in self.pools.values() if (r := p.role_of(labels)) is not None), None)
        if hit is None:
            return
        pool, role = hit
        uid = md["uid"]
        fleet = pool.sim.fleet
        if gone or md.get("deletionTimestamp"):
            rep = pool.by_pod.pop(uid, None)
            pool.pod_ready.discard(uid)
            pool.ready_asked.pop(uid, None)
            if rep is not None:
                fleet.remove(rep, pool.sim.now)
            return
        if _pod_ready(pod):
            pool.pod_ready.add(uid)
        else:
            pool.pod_ready.discard(uid)
        if uid in pool.by_pod:
            return
        # The first Pods take the simulation's initial (warm) replicas; every later one starts a new replica.
        mapped = {id(r) for r in pool.by_pod.values()}
        rep = next((r for r in fleet.active(role) if id(r) not in mapped), None)
        if rep is None:
            rep = fleet.add_replica(role, pool.sim.now)
        pool.by_pod[uid] = rep
        pool.pod_names[rep.uid] = md["name"]

    def _sync_ready(self) -> None:
        """Ready every Pod whose replica serves (asked again after 2 s if the Pod has not turned Ready)."""
        assert self.kubelet is not None
        now = time.monotonic()
        for pool in self.pools.values():
            for uid, rep in pool.by_pod.items():
                if rep.state is not ReplicaState.READY or uid in pool.pod_ready:
                    continue
                asked = pool.ready_asked.get(uid)
                if (asked is None or now - asked > 2.0) and self.kubelet.make_ready(uid):
                    pool.ready_asked[uid] = now

    async def _initial_pods(self, timeout_s: float = 120.0) -> None:
        """Wait until each Deployment's initial Pods exist and are Ready (their replicas are warm)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._sync_ready()
            waiting = {
                f"{p.name}/{role.value}": (sum(1 for u, r in p.by_pod.items() if r.role is role and u in p.pod_ready),
                                           n)
                for p in self.pools.values() for role, n in p.desired.items()
            }
            if all(have >= n for have, n in waiting.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"initial Pods not Ready within {timeout_s:g} s (ready, wanted): {waiting}")
            await asyncio.sleep(0.1)

    # -------------------------------------------------------------------------------- metrics

    def targets(self) -> list[dict[str, Any]]:
        """file_sd groups: every replica that serves (ready or draining)."""
        out = []
        for pool in self.pools.values():
            for rep in pool.sim.fleet.scraped():
                out.append({
                    "targets": [f"{self.host}:{self.port}"],
                    "labels": {
                        "__metrics_path__": f"/metrics/{pool.name}/{rep.name}",
                        "namespace": pool.namespace,
                        "pod": pool.pod_name(rep),
                        "role": rep.role.value,
                    },
                })
        return out

    def _write_file_sd(self) -> None:
        text = json.dumps(self.targets(), indent=1, sort_keys=True)
        if text != self._sd_text:
            _atomic_write(self.file_sd, text)
            self._sd_text = text

    async def _metrics(self, request: web.Request) -> web.Response:
        pool = self.pools.get(request.match_info["pool"])
        name = request.match_info["replica"]
        if pool is not None:
            for rep in pool.sim.fleet.scraped():
                if rep.name == name:
                    sim = pool.sim
                    sim.fleet.flush(sim.now)
                    text = render_replica(rep, sim.now, self.profile.model, sim.fleet.kv_capacity(rep.role))
                    body = scaled_exposition(text, self.speed)
                    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
        raise web.HTTPNotFound(text=f"no serving replica {name!r}\n")

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({
            "sim_time_s": self.sim_t,
            "finished": self.done,
            "pools": {
                p.name: {"sim_now_s": p.sim.now, "finished": p.sim.finished,
                         "replicas": {r.value: p.sim.fleet.target(r) for r in p.deployments},
                         # every live Pod and the state of its replica (STARTING, READY)
                         "pods": {p.pod_name(rep): rep.state.name for rep in p.by_pod.values()},
                         "draining": [p.pod_name(r) for r in p.sim.fleet.replicas
                                      if r.state is ReplicaState.DRAINING]}
                for p in self.pools.values()
            },
        })

    # -------------------------------------------------------------------------------- result

    def _write_result(self) -> None:
        out: dict[str, Any] = {"speed": self.speed, "trace": self.trace.source, "wall0": self.wall0_unix,
                               "pools": {}}
        for pool in self.pools.values():
            res = pool.sim.result()
            # The twin's own step never scales here: the actions are the controller's (or HPA's) /scale writes.
            res.summary["scaling_actions"] = len(pool.scale_log)
            out["pools"][pool.name] = {
                "summary": res.summary,
                "timeseries": res.timeseries,
                "scale_log": pool.scale_log,
                "twin_observations": [
                    {"sim_t": t, **observation_dict(o)} for t, o in pool.sim.policy.observations
                ],
            }
        _atomic_write(self.result_path, json.dumps(out, default=_json_default))

    # -------------------------------------------------------------------------------- life cycle

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set (or something fails); everything started is stopped on the way out."""
        await config.load_kube_config(config_file=self.cfg["kubeconfig"])
        self.api = client.ApiClient()
        k = self.cfg["kubelet"]
        # Readiness is ours (a Pod is Ready when its replica serves), hence the infinite cold start.
        self.kubelet = KubeletStandIn(k["url"], k["token"], k["ca_file"], ready_after=math.inf)
        self.kubelet.watch(self._on_pod)
        serve = asyncio.create_task(self._serve(), name="serve")
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait([stopper, serve], return_when=asyncio.FIRST_COMPLETED)
            if serve in done:
                serve.result()  # it only ends by failing
        finally:
            for task in (serve, stopper, *self._tasks):
                task.cancel()
            for task in (serve, stopper, *self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._runner is not None:
                await self._runner.cleanup()
            await self.kubelet.stop()
            await self.api.close()

    async def _serve(self) -> None:
        assert self.kubelet is not None
        await self._read_pools()
        await self.kubelet.start()  # after the pools exist: its first list maps the initial Pods
        await self._initial_pods()
        app = web.Application()
        app.router.add_get("/metrics/{pool}/{replica}", self._metrics)
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._write_file_sd()
        print(f"fleet emulator listening on http://{self.host}:{self.port}", flush=True)
        self._tasks = [
            asyncio.create_task(self._watch_deployments(), name="watch deployments"),
            asyncio.create_task(self._run(), name="clock"),
        ]
        await asyncio.gather(*self._tasks)


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


async def _main(cfg: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await FleetEmulator(cfg).run(stop)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s fleet %(levelname)s %(message)s")
    if len(sys.argv) != 2:
        sys.exit("usage: python -m e2e.fleet CONFIG.json")
    asyncio.run(_main(json.loads(Path(sys.argv[1]).read_text())))


if __name__ == "__main__":
    main()
