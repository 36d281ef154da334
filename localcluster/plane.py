"""The local control plane: upstream etcd, kube-apiserver and kube-controller-manager on loopback.

:class:`ControlPlane` starts the three (each waited for on its health endpoint) in a temporary directory and stops
them, and removes the directory, in :meth:`ControlPlane.stop` — also when start-up fails half way. Each child runs
in its own process group and dies with the process that started it (``PR_SET_PDEATHSIG``), so a killed test run
leaves no server behind. Nothing else on the machine is ever signalled.

What runs, and what does not:
- kube-apiserver with RBAC authorization, a static admin token (group ``system:masters``), service-account tokens
  (issuer and ECDSA signing key, so the TokenRequest API works), the front-proxy/requestheader CA the aggregation
  layer needs and ``--endpoint-reconciler-type=none`` (loopback addresses are not valid Endpoints).
- kube-controller-manager with the deployment, replicaset, statefulset, garbage-collector, namespace,
  service-account and horizontal-pod-autoscaler controllers, each under its own service account
  (``--use-service-account-credentials``), as kubeadm runs it. No node-lifecycle controllers: there is no kubelet.
- No scheduler and no kubelet: :mod:`localcluster.kubelet` binds Pods to a stand-in Node and makes them Ready.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import secrets
import shutil
import signal
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from .binaries import Binaries, find
from .pki import CA, Issued, write_signing_key
from .procs import Proc, free_port

SERVICE_CIDR = "10.96.0.0/16"
ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "horizontal-pod-autoscaler-controller",
    "root-ca-certificate-publisher-controller",
)


def _die_with_parent() -> None:
    """Run in the child before exec: SIGKILL it when the process that started it dies (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


@dataclass
class PlaneOptions:
    """What the control plane is started with.

    Attributes:
        hpa_sync_period_s: kube-controller-manager's ``--horizontal-pod-autoscaler-sync-period`` (seconds;
            upstream's default is 15).
        hpa_tolerance: ``--horizontal-pod-autoscaler-tolerance`` (upstream's default 0.1).
        hpa_downscale_window_s: ``--horizontal-pod-autoscaler-downscale-stabilization`` (seconds; upstream 300).
        kcm_qps: kube-controller-manager's client QPS (upstream 20; raised by the scale bench).
        kcm_controllers: the controllers kube-controller-manager runs (default :data:`CONTROLLERS`); the scale
            bench drops the deployment and replicaset controllers so that its Deployments create no Pods.
        extra_apiserver_args: appended to kube-apiserver's command line.
    """

    hpa_sync_period_s: float = 15.0
    hpa_tolerance: float = 0.1
    hpa_downscale_window_s: float = 300.0
    kcm_qps: int = 50
    kcm_controllers: tuple[str, ...] = CONTROLLERS
    extra_apiserver_args: list[str] = field(default_factory=list)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, started by :meth:`start`, stopped by :meth:`stop`.

    Attributes after :meth:`start`: ``url`` (``https://127.0.0.1:<port>``), ``admin_token``, ``ca_file``,
    ``admin_kubeconfig``, ``etcd_url``, ``workdir`` (logs are ``<workdir>/<name>.log``), ``front_proxy_ca``.
    """

    def __init__(self, options: PlaneOptions | None = None, binaries: Binaries | None = None) -> None:
        self.options = options or PlaneOptions()
        self.bin = binaries or find()
        self.workdir = Path(tempfile.mkdtemp(prefix="ias-cluster-"))
        self.procs: dict[str, Proc] = {}
        self.admin_token = secrets.token_hex(16)
        self._kcm_token = secrets.token_hex(16)
        self.url = ""
        self.etcd_url = ""
        self.admin_kubeconfig = self.workdir / "admin.kubeconfig"
        self.ca: CA | None = None
        self.front_proxy_ca: CA | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 120.0) -> None:
        """Start etcd, the apiserver and the controller-manager; each is ready when this returns."""
        try:
            self._write_credentials()
            self._start_etcd(timeout_s)
            self._start_apiserver(timeout_s)
            self._start_controller_manager(timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process this plane started (controller-manager first) and remove the work directory."""
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                proc.stop(grace_s=10.0)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart_apiserver(self, timeout_s: float = 60.0) -> None:
        """Stop kube-apiserver and start it again on the same port (a fault test).

        Call it from a thread that outlives the new process (normally the main thread): a child is killed when
        the thread that started it exits (``PR_SET_PDEATHSIG``), e.g. an ``asyncio.to_thread`` worker when the
        event loop closes. :meth:`stop_apiserver` may run in a worker; :meth:`start_apiserver` may not.
        """
        self.stop_apiserver()
        self.start_apiserver(timeout_s)

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (SIGTERM, then SIGKILL after 10 s); etcd and the controller-manager stay."""
        self.procs.pop("kube-apiserver").stop()

    def start_apiserver(self, timeout_s: float = 60.0) -> None:
        """Start kube-apiserver again on its port after :meth:`stop_apiserver`; ready when this returns.

        Starts a child: call it from a thread that outlives it (see :meth:`restart_apiserver`).
        """
        self._start_apiserver(timeout_s, port=int(self.url.rsplit(":", 1)[1]))

    def pause(self, name: str) -> None:
        """SIGSTOP one of the plane's processes (``etcd``, ``kube-apiserver``, ``kube-controller-manager``)."""
        self.procs[name].signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT a process paused by :meth:`pause`."""
        self.procs[name].signal(signal.SIGCONT)

    def log(self, name: str) -> str:
        """What one of the plane's processes has logged."""
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    # ------------------------------------------------------------------------------------------ helpers

    def kubeconfig(self, path: Path, *, token: str | None = None, server: str | None = None,
                   user: str = "admin", namespace: str | None = None) -> Path:
        """Write a kubeconfig for ``server`` (default: the apiserver) with a bearer ``token`` (default: admin)."""
        assert self.ca is not None
        context: dict[str, Any] = {"cluster": "local", "user": user}
        if namespace:
            context["namespace"] = namespace
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": server or self.url,
                                                       "certificate-authority": str(self.ca.path)}}],
            "users": [{"name": user, "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": "local", "context": context}],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(doc))
        return path

    def issue_serving_cert(self, stem: str, hosts: tuple[str, ...]) -> Issued:
        """A server certificate from the cluster CA (which every kubeconfig here trusts)."""
        assert self.ca is not None
        return self.ca.issue(stem, hosts[0], server=True, hosts=hosts)

    # ------------------------------------------------------------------------------------------ start-up

    def _write_credentials(self) -> None:
        self.ca = CA("cluster-ca", self.workdir)
        self.front_proxy_ca = CA("front-proxy-ca", self.workdir)
        self.ca.issue("apiserver", "kube-apiserver", server=True, hosts=(
            "127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local", "10.96.0.1"))
        self.front_proxy_ca.issue("front-proxy-client", "front-proxy-client")
        write_signing_key(self.workdir, "sa")
        (self.workdir / "tokens.csv").write_text(
            f"{self.admin_token},admin,admin-uid,system:masters\n"
            f"{self._kcm_token},system:kube-controller-manager,kcm-uid\n"
        )

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        proc = Proc(name, argv, self.workdir, cwd=self.workdir, preexec_fn=_die_with_parent)
        self.procs[name] = proc
        return proc

    def _start_etcd(self, timeout_s: float) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        proc = self._spawn("etcd", [
            str(self.bin.etcd), "--data-dir", str(self.workdir / "etcd"), "--name", "default",
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync", "--log-level", "warn", "--quota-backend-bytes", str(8 << 30),
        ])
        _wait_http(f"{self.etcd_url}/health", timeout_s, proc, verify=False,
                   ok=lambda r: r.status_code == 200 and json.loads(r.text).get("health") == "true")

    def _start_apiserver(self, timeout_s: float, port: int | None = None) -> None:
        port = port or free_port()
        self.url = f"https://127.0.0.1:{port}"
        d = self.workdir
        proc = self._spawn("kube-apiserver", [
            str(self.bin.apiserver),
            f"--etcd-servers={self.etcd_url}", "--bind-address=127.0.0.1", f"--secure-port={port}",
            "--advertise-address=127.0.0.1", f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--tls-cert-file={d / 'apiserver.crt'}", f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'cluster-ca.crt'}", f"--token-auth-file={d / 'tokens.csv'}",
            "--authorization-mode=RBAC", "--anonymous-auth=false",
            f"--service-account-issuer={ISSUER}", f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            f"--requestheader-client-ca-file={d / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client", "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group", "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={d / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={d / 'front-proxy-client.key'}",
            "--endpoint-reconciler-type=none", "--enable-aggregator-routing=false",
            "--profiling=false", "--v=1",
            *self.options.extra_apiserver_args,
        ])
        _wait_http(f"{self.url}/readyz", timeout_s, proc, verify=str(d / "cluster-ca.crt"),
                   headers={"Authorization": f"Bearer {self.admin_token}"})

    def _start_controller_manager(self, timeout_s: float) -> None:
        port = free_port()
        kcfg = self.kubeconfig(self.workdir / "kcm.kubeconfig", token=self._kcm_token,
                               user="system:kube-controller-manager")
        o = self.options
        proc = self._spawn("kube-controller-manager", [
            str(self.bin.controller_manager),
            f"--kubeconfig={kcfg}", f"--authentication-kubeconfig={kcfg}", f"--authorization-kubeconfig={kcfg}",
            "--bind-address=127.0.0.1", f"--secure-port={port}", f"--cert-dir={self.workdir / 'kcm-certs'}",
            "--leader-elect=false", "--use-service-account-credentials=true",
            f"--controllers={','.join(o.kcm_controllers)}", f"--root-ca-file={self.workdir / 'cluster-ca.crt'}",
            f"--horizontal-pod-autoscaler-sync-period={o.hpa_sync_period_s:g}s",
            f"--horizontal-pod-autoscaler-tolerance={o.hpa_tolerance:g}",
            f"--horizontal-pod-autoscaler-downscale-stabilization={o.hpa_downscale_window_s:g}s",
            f"--kube-api-qps={o.kcm_qps}", f"--kube-api-burst={2 * o.kcm_qps}", "--v=1",
        ])
        _wait_http(f"https://127.0.0.1:{port}/healthz", timeout_s, proc, verify=False)


def _wait_http(url: str, timeout_s: float, proc: Proc, *, verify: bool | str,
               headers: dict[str, str] | None = None, ok: Any = None) -> None:
    """Poll ``url`` until it answers 200 (or ``ok(response)``); fail at once if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    last = ""
    with requests.Session() as http, warnings.catch_warnings():
        http.trust_env = False
        warnings.simplefilter("ignore")  # verify=False for the controller-manager's self-signed serving cert
        while time.monotonic() < deadline:
            try:
                r = http.get(url, verify=verify, headers=headers, timeout=2)
                if (ok(r) if ok else r.status_code == 200):
                    return
                last = f"{r.status_code} {r.text[:300]}"
            except requests.RequestException as err:
                last = repr(err)
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {url} not ready within {timeout_s:g}s (last: {last}):\n{proc.tail()}")
