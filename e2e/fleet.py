"""The fleet emulator: model servers of the cluster in a box, driven by the digital twin in accelerated time.

``python -m e2e.fleet CONFIG.json`` runs, per pool, one :class:`~autoscaler.sim.engine.Simulation` of the trace
segment and

- **follows the controller**: it watches the pool's Deployments and applies every change of ``spec.replicas``
  to the simulation at once (new replicas serve after the profile's cold start, in simulated time; removed ones
  drain), exactly as a kubelet would start or stop model-server pods;
- **mirrors the replicas as Pods** in the API server: one Pod per simulated replica, labelled with the pool's
  selector and the role label, ``Ready`` only once the replica serves; a draining replica's Pod is deleted (a
  terminating Pod, which the controller no longer counts). Deployment ``status`` follows (replicas,
  readyReplicas) so ``kubectl get deploy`` tells the same story;
- **serves every replica's vLLM ``/metrics``** on one HTTP port at ``/metrics/<pool>/<replica>`` and writes a
  Prometheus ``file_sd`` file listing the serving replicas (labels ``namespace``, ``pod``, ``role``), rewritten
  atomically whenever the set changes.

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
    """One InferencePool's model servers."""

    name: str
    namespace: str
    deployments: dict[Role, str]
    pod_labels: dict[Role, dict[str, str]]
    sim: Simulation
    desired: dict[Role, int] = field(default_factory=dict)
    pods: dict[str, tuple[Role, bool]] = field(default_factory=dict)  # pod → (role, ready) as last written
    status: dict[Role, tuple[int, int]] = field(default_factory=dict)
    scale_log: list[dict[str, Any]] = field(default_factory=list)

    def pod_name(self, rep: Replica) -> str:
        return f"{self.deployments[rep.role]}-{rep.name}"


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
            labels: dict[Role, dict[str, str]] = {}
            for role, name in deployments.items():
                d = await apps.read_namespaced_deployment(name, self.namespace)
                initial[role] = int(d.spec.replicas or 0)
                labels[role] = dict(d.spec.template.metadata.labels or {})
            pool = Pool(p["name"], self.namespace, deployments, labels, self._new_sim(initial))
            pool.desired = dict(initial)
            self.pools[pool.name] = pool

    # -------------------------------------------------------------------------------- following /scale

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
                sim = pool.sim
                fleet = sim.fleet
                for role, want in pool.desired.items():
                    if fleet.target(role) != want:
                        fleet.scale_to(role, want, max(sim.now, 0.0))
                if not sim.finished:
                    sim.advance(self.sim_t)
            await self._sync_cluster()
            self._write_file_sd()
            if not self.done and all(p.sim.finished for p in self.pools.values()):
                self.done = True
                self._write_result()
            await asyncio.sleep(tick)

    # -------------------------------------------------------------------------------- pods and status

    async def _sync_cluster(self) -> None:
        assert self.api is not None
        core = client.CoreV1Api(self.api)
        apps = client.AppsV1Api(self.api)
        for pool in self.pools.values():
            fleet = pool.sim.fleet
            wanted: dict[str, tuple[Role, bool]] = {}
            for rep in fleet.replicas:
                if rep.state in (ReplicaState.STARTING, ReplicaState.READY):
                    wanted[pool.pod_name(rep)] = (rep.role, rep.state is ReplicaState.READY)
            for name, (role, ready) in wanted.items():
                have = pool.pods.get(name)
                if have is None:
                    body = {
                        "metadata": {"name": name, "namespace": pool.namespace, "labels": pool.pod_labels[role]},
                        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]},
                    }
                    with contextlib.suppress(ApiException):
                        await core.create_namespaced_pod(pool.namespace, body)
                if have != (role, ready):
                    status = {
                        "phase": "Running" if ready else "Pending",
                        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    }
                    try:
                        await core.patch_namespaced_pod_status(name, pool.namespace, {"status": status})
                        pool.pods[name] = (role, ready)
                    except ApiException as err:
                        log.warning("pod %s status: %s", name, err.reason)
            for name in [n for n in pool.pods if n not in wanted]:
                with contextlib.suppress(ApiException):
                    await core.delete_namespaced_pod(name, pool.namespace, grace_period_seconds=0)
                del pool.pods[name]
            for role, deploy in pool.deployments.items():
                active = fleet.active(role)
                counts = (len(active), sum(1 for r in active if r.state is ReplicaState.READY))
                if pool.status.get(role) != counts:
                    body = {"status": {"replicas": counts[0], "readyReplicas": counts[1],
                                       "availableReplicas": counts[1], "updatedReplicas": counts[0]}}
                    try:
                        await apps.patch_namespaced_deployment_status(deploy, pool.namespace, body)
                        pool.status[role] = counts
                    except ApiException as err:
                        log.warning("deployment %s status: %s", deploy, err.reason)

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
                         "replicas": {r.value: p.sim.fleet.target(r) for r in p.deployments}}
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
        await config.load_kube_config(config_file=self.cfg["kubeconfig"])
        self.api = client.ApiClient()
        try:
            await self._read_pools()
            app = web.Application()
            app.router.add_get("/metrics/{pool}/{replica}", self._metrics)
            app.router.add_get("/status", self._status)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            addresses = self._runner.addresses
            self.port = int(addresses[0][1])
            await self._sync_cluster()
            self._write_file_sd()
            print(f"fleet emulator listening on http://{self.host}:{self.port}", flush=True)
            self._tasks = [
                asyncio.create_task(self._watch_deployments(), name="watch deployments"),
                asyncio.create_task(self._run(), name="clock"),
            ]
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([stopper, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            stopper.cancel()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._runner is not None:
                await self._runner.cleanup()
            await self.api.close()


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
