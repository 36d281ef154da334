"""The cluster in a box: every process of a closed loop on loopback, started and stopped together.

:class:`Box` starts, in order: the local control plane (:class:`localcluster.plane.ControlPlane`: upstream etcd,
kube-apiserver and kube-controller-manager, with the project's CRD and the upstream InferencePool CRDs), a real
Prometheus (Debian's ``/usr/bin/prometheus``, ``file_sd`` over the fleet's replicas), the real controller
(``python -m autoscaler run``) and the fleet emulator (``python -m e2e.fleet``: model servers driven by the digital
twin, and the kubelet of their Pods, which kube-controller-manager's Deployment and ReplicaSet controllers create
and delete). It applies the pools and their Deployments before, the InferenceAutoscalers after the fleet, and records
``status`` as it changes. For an ``actuation: HPA`` autoscaler it registers the shipped external metrics
APIService (pointed at the controller on loopback) and the HorizontalPodAutoscalers of
``manifests/examples/hpa-mode``: kube-controller-manager's own HPA controller scales that pool. Every process is
stopped and every temporary directory removed on the way out, also on failure or Ctrl-C (SIGTERM, then SIGKILL
after a grace period; each runs in its own process group, and the control plane's processes die with this one).

Time mapping (``speed`` = S simulated seconds per wall second): every duration the controller or Prometheus
uses is the simulated duration divided by S — control interval, rate window, scrape interval, cold start,
forecast horizon and season, behaviour windows and periods, the HPA sync period. See ``e2e/README.md``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from localcluster.binaries import find as find_binaries
from localcluster.client import Kube, wait_until
from localcluster.crds import install_crds
from localcluster.plane import ControlPlane, PlaneOptions
from localcluster.procs import Proc, free_port, http_ready

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = "/usr/bin/prometheus"
NAMESPACE = "serving"
IAS_API = "autoscaler.inference.dev/v1alpha1"
CONTROLLER_NS = "inference-autoscaler-system"
CONTROLLER_SA = "inference-autoscaler"
METRICS_SERVICE = "inference-autoscaler-external-metrics"  # the shipped APIService's Service
# The controller's namespace, ServiceAccount and RBAC as shipped (the external-metrics overlay adds delegated
# authentication and authorization, the front-proxy ConfigMap reader and the HPA's read access).
CONTROLLER_RBAC = ("manifests/base/namespace.yaml", "manifests/base/serviceaccount.yaml", "manifests/base/rbac.yaml",
                   "manifests/overlays/external-metrics/rbac.yaml")


def fmt_duration(seconds: float) -> str:
    """A Go-style duration with millisecond resolution (the CRD's Duration format)."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


# --------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Scenario:
    """What one box runs. Simulated durations in seconds; wall durations are these divided by ``speed``.

    Attributes:
        speed: simulated seconds per wall second.
        trace, start_s, end_s, rate_scale: the trace segment (source seconds) and its load multiplier.
        profile: performance profile of every replica (and the controller's capacity model).
        initial: replicas per role at the start (warm).
        max_replicas: upper bound per role.
        control_interval_s, window_s, scrape_interval_s: the controller's interval, its rate window, and
            Prometheus's scrape interval (simulated).
        staleness_s: spec.metrics.staleness (simulated; the CRD's default 2 m).
        scale_down_window_s: behaviour.scaleDown.stabilizationWindow (simulated).
        season_s: forecast season (simulated).
        hpa_sync_s: kube-controller-manager's HPA sync period (simulated; upstream's default 15 s).
        slo_ttft_s, slo_itl_s, percentile: the SLO.
        pools: pool name → actuation: ``Direct``, ``HPA`` (the controller's desired replicas through an HPA), or
            ``HPA-queue`` (an InferenceAutoscaler in HPA mode whose HPAs ignore its decisions and run the
            scorecard's ``hpa-queue`` baseline on ``inference_autoscaler_queue_depth`` instead).
    """

    speed: float = 15.0
    trace: str = "azure_conv"
    start_s: float = 15 * 60.0
    end_s: float = 45 * 60.0
    rate_scale: float = 1.0
    profile: str = "llama2-70b/h100/tp4"
    initial: int = 2
    max_replicas: int = 8
    control_interval_s: float = 15.0
    window_s: float = 60.0
    scrape_interval_s: float = 7.5
    scale_down_window_s: float = 120.0
    staleness_s: float = 120.0
    season_s: float = 3600.0
    hpa_sync_s: float = 15.0
    slo_ttft_s: float = 1.0
    slo_itl_s: float = 0.1
    percentile: float = 95.0
    pools: tuple[tuple[str, str], ...] = (("llama", "Direct"), ("llama-hpa", "HPA"))

    def wall(self, sim_seconds: float) -> float:
        """Wall seconds of a simulated duration."""
        return sim_seconds / self.speed

    @property
    def cold_start_s(self) -> float:
        """The profile's measured cold start (simulated seconds)."""
        from autoscaler.catalog import load_profile

        return float(load_profile(self.profile).cold_start_s)

    def manifests(self, prometheus_url: str) -> list[dict[str, Any]]:
        """Namespace, and per pool: InferencePool, prefill and decode Deployments, InferenceAutoscaler."""
        from autoscaler.catalog import load_profile

        prof = load_profile(self.profile)
        objs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
        for pool, actuation in self.pools:
            objs.append({
                "apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
                "metadata": {"name": pool, "namespace": NAMESPACE},
                "spec": {"selector": {"matchLabels": {"app": pool}}, "targetPorts": [{"number": 8000}],
                         "endpointPickerRef": {"name": f"{pool}-epp", "port": {"number": 9002}}},
            })
            for role in ("prefill", "decode"):
                labels = {"app": pool, "llm-d.ai/role": role}
                objs.append({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": f"{pool}-{role}", "namespace": NAMESPACE},
                    "spec": {"replicas": self.initial, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                                 {"name": "vllm", "image": "ghcr.io/llm-d/llm-d-inference-sim:latest"}]}}},
                })
            period = fmt_duration(self.wall(15.0))
            role_spec = {"minReplicas": 1, "maxReplicas": self.max_replicas, "gpusPerReplica": prof.gpus_per_replica}
            objs.append({
                "apiVersion": IAS_API, "kind": "InferenceAutoscaler",
                "metadata": {"name": pool, "namespace": NAMESPACE},
                "spec": {
                    "poolRef": {"name": pool},
                    "roles": {"prefill": dict(role_spec), "decode": dict(role_spec)},
                    "slo": {"ttft": {"percentile": self.percentile, "target": fmt_duration(self.slo_ttft_s)},
                            "itl": {"percentile": self.percentile, "target": fmt_duration(self.slo_itl_s)}},
                    "metrics": {"prometheus": {"url": prometheus_url, "timeout": "2s"}, "engine": "vllm",
                                "window": fmt_duration(self.wall(self.window_s)),
                                "staleness": fmt_duration(self.wall(self.staleness_s))},
                    "performance": {"profile": self.profile,
                                    "coldStart": fmt_duration(self.wall(self.cold_start_s))},
                    "cost": {"accelerator": prof.accelerator, "pricePerGpuHour": f"{prof.price_per_gpu_hour:.2f}"},
                    "forecast": {"method": "auto", "season": fmt_duration(self.wall(self.season_s))},
                    "behavior": {
                        "scaleUp": {"tolerance": 0.0, "policies": [
                            {"type": "Percent", "value": 100, "period": period},
                            {"type": "Pods", "value": 4, "period": period}]},
                        "scaleDown": {"stabilizationWindow": fmt_duration(self.wall(self.scale_down_window_s)),
                                      "tolerance": 0.05,
                                      "policies": [{"type": "Percent", "value": 100, "period": period}]},
                    },
                    "controlInterval": fmt_duration(self.wall(self.control_interval_s)),
                    "manualPause": fmt_duration(self.wall(600.0)),
                    "actuation": "HPA" if actuation.startswith("HPA") else actuation,
                },
            })
        return objs


# --------------------------------------------------------------------------------------------- the HPA


HPA_QUEUE_TARGET = 5  # waiting requests per replica: the scorecard's hpa-queue default


def _hpa_rules(sc: Scenario, actuation: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scaleUp, scaleDown) in wall seconds (whole seconds, at least 1). ``HPA``: as manifests/examples/hpa-mode
    (no stabilisation, tolerance 0, 100 % or maxReplicas pods per period). ``HPA-queue``: the HPA's own defaults
    (the scorecard's hpa-queue): up max(100 %, 4 pods) per 15 s, down 100 % per 15 s after a 300 s window,
    tolerance 10 %."""
    def period(sim_s: float) -> int:
        return max(1, round(sc.wall(sim_s)))

    if actuation == "HPA":
        up = {"stabilizationWindowSeconds": 0, "tolerance": 0, "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": period(15)},
            {"type": "Pods", "value": sc.max_replicas, "periodSeconds": period(15)}]}
        down = {"stabilizationWindowSeconds": 0, "tolerance": 0,
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": period(15)}]}
        return up, down
    up = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": period(15)},
        {"type": "Pods", "value": 4, "periodSeconds": period(15)}]}
    down = {"stabilizationWindowSeconds": period(300),
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": period(15)}]}
    return up, down


def hpa_objects(sc: Scenario) -> list[dict[str, Any]]:
    """One HorizontalPodAutoscaler per role of each HPA pool: ``HPA`` pools on
    ``inference_autoscaler_desired_replicas`` (``AverageValue`` 1, as ``manifests/examples/hpa-mode``),
    ``HPA-queue`` pools on ``inference_autoscaler_queue_depth`` (``AverageValue`` 5 per replica)."""
    out: list[dict[str, Any]] = []
    for pool, actuation in sc.pools:
        if not actuation.startswith("HPA"):
            continue
        metric, target = (("inference_autoscaler_desired_replicas", "1") if actuation == "HPA"
                          else ("inference_autoscaler_queue_depth", str(HPA_QUEUE_TARGET)))
        up, down = _hpa_rules(sc, actuation)
        for role in ("prefill", "decode"):
            out.append({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": f"{pool}-{role}", "namespace": NAMESPACE},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{pool}-{role}"},
                    "minReplicas": 1, "maxReplicas": sc.max_replicas,
                    "metrics": [{"type": "External", "external": {
                        "metric": {"name": metric,
                                   "selector": {"matchLabels": {"inferenceautoscaler": pool, "role": role}}},
                        "target": {"type": "AverageValue", "averageValue": target}}}],
                    "behavior": {"scaleUp": up, "scaleDown": down},
                },
            })
    return out


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


# --------------------------------------------------------------------------------------------- the box


@dataclass
class StatusRow:
    """One observed change of an InferenceAutoscaler's status."""

    wall: float
    sim_t: float
    pool: str
    prefill: str
    decode: str
    ttft: str
    reason: str


class Box:
    """The cluster in a box for one :class:`Scenario` (an async context manager).

    Attributes after start: ``plane`` (the :class:`ControlPlane`), ``kube`` (its admin client), ``kubeconfig``
    (admin, for kubectl; the controller's own is ``controller.kubeconfig`` in the work directory),
    ``prometheus_url``, ``controller_metrics_url``, ``workdir``; ``history`` (status changes).
    """

    def __init__(self, scenario: Scenario, *, workdir: Path | None = None,
                 on_change: Callable[[Box, StatusRow], None] | None = None) -> None:
        self.sc = scenario
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ias-e2e-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.procs: dict[str, Proc] = {}
        self.history: list[StatusRow] = []
        self.snapshots: list[tuple[float, str, dict[str, Any]]] = []  # (sim_t, pool, status) on every change
        self.on_change = on_change
        self.wall0 = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._api: Any = None
        self.plane: ControlPlane | None = None
        self.kube: Kube | None = None
        self.prometheus_url = ""
        self.controller_metrics_url = ""
        self.fleet_url = ""
        self.result: dict[str, Any] | None = None

    def sim_time(self, wall: float | None = None) -> float:
        """Simulated seconds since the fleet started, at ``wall`` (default now)."""
        return ((wall or time.time()) - self.wall0) * self.sc.speed

    async def __aenter__(self) -> Box:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -------------------------------------------------------------------------------- start

    async def start(self) -> None:
        """Start every process and apply the scenario's objects; the fleet's clock starts last."""
        sc = self.sc
        plane = self._start_plane()
        assert plane.ca is not None
        self.kube = Kube(plane.url, plane.admin_token, str(plane.ca.path))
        install_crds(self.kube)
        plane.kubeconfig(self.kubeconfig, namespace=NAMESPACE)
        controller_kubeconfig = self._controller_identity(plane)

        from kubernetes_asyncio import client, config

        await config.load_kube_config(config_file=str(self.kubeconfig))
        self._api = client.ApiClient()
        self.apps = client.AppsV1Api(self._api)
        self.custom = client.CustomObjectsApi(self._api)
        prom_port = free_port()
        self.prometheus_url = f"http://127.0.0.1:{prom_port}"
        objs = sc.manifests(self.prometheus_url)
        ias_objs = [o for o in objs if o["kind"] == "InferenceAutoscaler"]
        self.apply([o for o in objs if o["kind"] != "InferenceAutoscaler"])

        mport, hport, eport = free_port(), free_port(), free_port()
        self.controller_metrics_url = f"http://127.0.0.1:{mport}/metrics"
        file_sd = self._write_fleet_config(plane)
        await self._start_prometheus(prom_port, mport, file_sd)

        # The external metrics API's serving certificate, from the cluster CA, for the name the aggregator checks
        # (<service>.<namespace>.svc); the aggregator presents kube-apiserver's front-proxy client certificate,
        # which the controller trusts through kube-system/extension-apiserver-authentication.
        serving = plane.issue_serving_cert("external-metrics", ("localhost", "127.0.0.1",  # CN: ≤ 64 characters
                                                                f"{METRICS_SERVICE}.{CONTROLLER_NS}.svc"))
        env = {"PYTHONPATH": str(ROOT)}
        self.procs["controller"] = Proc("controller", [
            sys.executable, "-m", "autoscaler", "run", "--kubeconfig", str(controller_kubeconfig), "--log-format",
            "console", "--metrics-host", "127.0.0.1", "--metrics-port", str(mport),
            "--health-host", "127.0.0.1", "--health-port", str(hport),
            "--external-metrics-host", "127.0.0.1", "--external-metrics-port", str(eport),
            "--tls-cert-file", str(serving.cert), "--tls-key-file", str(serving.key),
            "--lease-namespace", CONTROLLER_NS, "--time-scale", repr(sc.speed),
            "--record-decisions", str(self.workdir / "decisions.jsonl")], self.workdir, env)
        await http_ready(f"http://127.0.0.1:{hport}/readyz", 60, self.procs["controller"])

        # The fleet starts the clock (t=0 of the trace segment) once the initial Pods are Ready.
        self.procs["fleet"] = Proc("fleet", [sys.executable, "-m", "e2e.fleet", str(self.workdir / "fleet.json")],
                                   self.workdir, env)
        line = await self.procs["fleet"].wait_for_line("fleet emulator listening on", 180)
        self.wall0 = time.time()
        self.fleet_url = line.rsplit(" ", 1)[1]
        self.apply(ias_objs)
        if any(actuation.startswith("HPA") for _, actuation in sc.pools):
            self._register_external_metrics(eport)
            self.apply(hpa_objects(sc))
        self._tasks.append(asyncio.create_task(self._record(), name="status recorder"))

    def _start_plane(self) -> ControlPlane:
        """Start etcd, kube-apiserver and kube-controller-manager (blocking, on this thread on purpose: the
        plane's children get SIGKILL when the thread that started them ends, so not from a worker thread).
        The HPA controller syncs every ``hpa_sync_s`` simulated seconds."""
        self.plane = ControlPlane(PlaneOptions(hpa_sync_period_s=self.sc.wall(self.sc.hpa_sync_s)))
        self.plane.start()
        return self.plane

    def _register_external_metrics(self, port: int) -> None:
        """The shipped ``v1beta1.external.metrics.k8s.io`` APIService, pointed at the controller on loopback.

        Its Service is an ``ExternalName`` of ``localhost`` (there is no Pod network here; the aggregator
        proxies to an ExternalName Service by name, at the APIService's port), and the aggregator verifies the
        serving certificate against the cluster CA rather than skipping verification as the shipped one must.
        Waits until the APIService is ``Available`` (the aggregator's discovery check passed)."""
        assert self.kube is not None and self.plane is not None and self.plane.ca is not None
        self.kube.apply({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": METRICS_SERVICE, "namespace": CONTROLLER_NS},
                         "spec": {"type": "ExternalName", "externalName": "localhost",
                                  "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}}, manager="e2e")
        apiservice = yaml.safe_load((ROOT / "manifests/overlays/external-metrics/apiservice.yaml").read_text())
        spec = apiservice["spec"]
        spec.pop("insecureSkipTLSVerify")
        spec["caBundle"] = base64.b64encode(self.plane.ca.pem).decode()
        spec["service"]["port"] = port
        self.kube.apply(apiservice, manager="e2e")
        wait_until(lambda: any(c["type"] == "Available" and c["status"] == "True" for c in (self.kube.get(
            "apiregistration.k8s.io/v1", "APIService", apiservice["metadata"]["name"]).get("status") or {}).get(
            "conditions") or []), what="the external metrics APIService Available", timeout_s=60)

    def _controller_identity(self, plane: ControlPlane) -> Path:
        """Apply the shipped RBAC (:data:`CONTROLLER_RBAC`) and write ``controller.kubeconfig`` with a token of the
        controller's ServiceAccount (TokenRequest): the controller runs with exactly the rights a cluster gives it."""
        assert self.kube is not None
        for rel in CONTROLLER_RBAC:
            for doc in yaml.safe_load_all((ROOT / rel).read_text()):
                if doc:
                    self.kube.apply(doc, manager="e2e")
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": 86400}}
        answer = self.kube.request(
            "POST", f"/api/v1/namespaces/{CONTROLLER_NS}/serviceaccounts/{CONTROLLER_SA}/token", request)
        return plane.kubeconfig(self.workdir / "controller.kubeconfig", token=answer["status"]["token"],
                                user=CONTROLLER_SA)

    def _write_fleet_config(self, plane: ControlPlane) -> Path:
        """``fleet.json`` (the kubelet stand-in talks to the apiserver with the admin token); the file_sd path."""
        sc = self.sc
        assert plane.ca is not None
        file_sd = self.workdir / "targets.json"
        file_sd.write_text("[]")
        fleet_cfg = {
            "kubeconfig": str(self.kubeconfig), "namespace": NAMESPACE, "speed": sc.speed,
            "kubelet": {"url": plane.url, "token": plane.admin_token, "ca_file": str(plane.ca.path)},
            "file_sd": str(file_sd), "result": str(self.workdir / "result.json"), "profile": sc.profile,
            "trace": {"name": sc.trace, "start_s": sc.start_s, "end_s": sc.end_s, "rate_scale": sc.rate_scale},
            "slo": {"ttft_s": sc.slo_ttft_s, "itl_s": sc.slo_itl_s, "percentile": sc.percentile},
            "sim_interval_s": sc.control_interval_s,
            "pools": [{"name": p, "deployments": {"prefill": f"{p}-prefill", "decode": f"{p}-decode"}}
                      for p, _ in sc.pools],
        }
        (self.workdir / "fleet.json").write_text(json.dumps(fleet_cfg, indent=1))
        return file_sd

    async def _start_prometheus(self, port: int, controller_port: int, file_sd: Path) -> None:
        """Prometheus scraping the fleet's replicas (file_sd) and the controller."""
        scrape = fmt_duration(self.sc.wall(self.sc.scrape_interval_s))
        prom_cfg = {
            "global": {"scrape_interval": scrape, "scrape_timeout": scrape, "evaluation_interval": scrape},
            "scrape_configs": [
                {"job_name": "model-servers", "file_sd_configs": [{"files": [str(file_sd)], "refresh_interval": "1s"}]},
                {"job_name": "inference-autoscaler",
                 "static_configs": [{"targets": [f"127.0.0.1:{controller_port}"]}]},
            ],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(prom_cfg))
        if shutil.which(PROMETHEUS) is None:
            raise RuntimeError(f"{PROMETHEUS} not installed (apt-get install -y --no-install-recommends prometheus)")
        self.procs["prometheus"] = Proc("prometheus", [
            PROMETHEUS, f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn"], self.workdir)
        await http_ready(f"{self.prometheus_url}/-/ready", 30, self.procs["prometheus"])

    def apply(self, objs: list[dict[str, Any]]) -> None:
        """Create objects (namespace, pools, Deployments, InferenceAutoscalers) through the API."""
        assert self.kube is not None
        for obj in objs:
            if obj["kind"] == "Namespace":
                self.kube.ensure_namespace(obj["metadata"]["name"])  # waits for its default ServiceAccount
            else:
                self.kube.create(obj)

    # -------------------------------------------------------------------------------- observe

    async def _record(self) -> None:
        last: dict[str, tuple[str, ...]] = {}
        while True:
            with contextlib.suppress(Exception):
                lst = await self.custom.list_namespaced_custom_object(
                    "autoscaler.inference.dev", "v1alpha1", NAMESPACE, "inferenceautoscalers")
                now = time.time()
                for obj in lst["items"]:
                    st = obj.get("status") or {}
                    sm = st.get("summary") or {}
                    row = StatusRow(now, self.sim_time(now), obj["metadata"]["name"], sm.get("prefill", "-"),
                                    sm.get("decode", "-"), sm.get("ttft", "-"),
                                    (st.get("lastDecision") or {}).get("reason", "-"))
                    key = (row.prefill, row.decode, row.reason)
                    if last.get(row.pool) != key:
                        last[row.pool] = key
                        self.history.append(row)
                        self.snapshots.append((row.sim_t, row.pool, st))
                        if self.on_change is not None:
                            self.on_change(self, row)
            await asyncio.sleep(0.25)

    async def fleet_status(self) -> dict[str, Any]:
        """The fleet's ``GET /status`` (simulated time, progress, Pods and their replicas' states)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http,
            http.get(f"{self.fleet_url}/status") as r,
        ):
            data: dict[str, Any] = await r.json()
            return data

    async def wait_finished(self, timeout_s: float) -> dict[str, Any]:
        """Wait until every pool's segment is served; returns the fleet's ground truth (``result.json``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            plane_procs = self.plane.procs if self.plane is not None else {}
            for name, proc in {**plane_procs, **self.procs}.items():
                if not proc.alive():
                    raise RuntimeError(f"{name} exited early:\n{proc.log_text()[-3000:]}")
            try:
                finished = (await self.fleet_status())["finished"]
            except (TimeoutError, aiohttp.ClientError) as err:
                # A starved fleet (a shared, loaded machine) may answer late; only its exit is fatal (above).
                print(f"fleet status: {err!r}; asking again", flush=True)
                finished = False
            if finished:
                self.result = json.loads((self.workdir / "result.json").read_text())
                return self.result
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the trace segment was not served within {timeout_s}s")

    async def replica_view(self) -> dict[str, dict[str, Any]]:
        """Per pool, the same replicas three ways, at one moment: the live Pods on the API server (name → Ready),
        the fleet's Pod ↔ replica map (name → replica state) and draining replicas, and the ``pod`` labels of
        the targets Prometheus scrapes (serving replicas, draining ones included)."""
        assert self.kube is not None
        fleet = (await self.fleet_status())["pools"]
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(f"{self.prometheus_url}/api/v1/targets?state=active") as r,
        ):
            targets = (await r.json())["data"]["activeTargets"]
        out: dict[str, dict[str, Any]] = {}
        for pool, _ in self.sc.pools:
            pods = self.kube.list_objects("v1", "Pod", NAMESPACE, label_selector=f"app={pool}")
            out[pool] = {
                "api": {p["metadata"]["name"]: _pod_ready(p) for p in pods
                        if not p["metadata"].get("deletionTimestamp")},
                "fleet": fleet[pool]["pods"],
                "draining": fleet[pool]["draining"],
                "scraped": sorted(t["labels"]["pod"] for t in targets if t["labels"].get("job") == "model-servers"
                                  and t["labels"].get("pod", "").startswith((f"{pool}-prefill-", f"{pool}-decode-"))),
                "deployments": {role: f"{pool}-{role}" for role in ("prefill", "decode")},
                "spec": {role: int(self.kube.get("apps/v1", "Deployment", f"{pool}-{role}", NAMESPACE)["spec"]
                                   ["replicas"]) for role in ("prefill", "decode")},
            }
        return out

    def hpa_view(self, pool: str) -> dict[str, Any]:
        """The pool's HorizontalPodAutoscalers (``objects``: name → object) and the core Events about them."""
        assert self.kube is not None
        names = {f"{pool}-{role}" for role in ("prefill", "decode")}
        objs = {o["metadata"]["name"]: o for o in self.kube.list_objects(
            "autoscaling/v2", "HorizontalPodAutoscaler", NAMESPACE) if o["metadata"]["name"] in names}
        events = [e for e in self.kube.list_objects("v1", "Event", NAMESPACE)
                  if e["involvedObject"].get("kind") == "HorizontalPodAutoscaler"
                  and e["involvedObject"].get("name") in names]
        return {"objects": objs, "events": events}

    async def events(self, name: str) -> list[dict[str, Any]]:
        """events.k8s.io/v1 Events about InferenceAutoscaler ``name``."""
        from kubernetes_asyncio import client

        api = client.EventsV1Api(self._api)
        lst = await api.list_namespaced_event(NAMESPACE, field_selector=f"regarding.name={name}")
        return [self._api.sanitize_for_serialization(e) for e in lst.items]

    async def get_ias(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self.custom.get_namespaced_custom_object(
            "autoscaler.inference.dev", "v1alpha1", NAMESPACE, "inferenceautoscalers", name)
        return obj

    async def controller_metrics(self) -> str:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
            http.get(self.controller_metrics_url) as r,
        ):
            return await r.text()

    def kubectl_get_ias(self) -> str:
        """``kubectl get ias -n serving`` against the box, with the control plane's own (pinned) kubectl."""
        kubectl = str(find_binaries().kubectl)
        out = subprocess.run([kubectl, "--kubeconfig", str(self.kubeconfig), "get", "ias", "-n", NAMESPACE],
                             capture_output=True, text=True, timeout=30, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"kubectl get ias failed: {out.stderr.strip()}")
        return out.stdout

    # -------------------------------------------------------------------------------- stop

    async def stop(self) -> None:
        """Stop everything started, newest first, the control plane last (its directory goes with it); keeps the
        work directory only when ``E2E_KEEP`` is set (then with the plane's logs in ``cluster/``)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._api is not None:
            await self._api.close()
            self._api = None
        self.exit_codes = {}
        for name in ("controller", "fleet", "prometheus"):
            proc = self.procs.get(name)
            if proc is not None:
                self.exit_codes[name] = proc.stop()
        if self.kube is not None:
            self.kube.close()
            self.kube = None
        keep = bool(os.environ.get("E2E_KEEP"))
        if self.plane is not None:
            if keep:
                logs = self.workdir / "cluster"
                logs.mkdir(exist_ok=True)
                for log in self.plane.workdir.glob("*.log"):
                    shutil.copy(log, logs / log.name)
            self.plane.stop()
            self.plane = None
        if self._own_dir and not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
