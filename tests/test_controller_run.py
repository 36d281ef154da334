"""The real ``inference-autoscaler run`` entry point, as a subprocess against the emulated API server: it serves
``/metrics`` (fed with reconcile durations, errors by kind and leader status) and the external metrics API
(authenticated from the cluster's ConfigMap, authorised by SubjectAccessReview) on one decision board, and stops
cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fixtures.controller import NS, fleet, ias
from tests.fixtures.pki import PKI

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(text: str, name: str) -> dict[str, float]:
    """``{label-part: value}`` of every sample of ``name`` in a text exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            rest = head[len(name) :]
            if rest == "" or rest.startswith("{"):
                out[rest] = float(value)
    return out


async def _until(check: Any, within: float) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await check()
            if last:
                return last
        except (aiohttp.ClientError, OSError, AssertionError) as err:
            last = err
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached within {within}s; last: {last!r}")


async def test_run_serves_metrics_and_the_external_metrics_api(
    kube_server: Any, kubeconfig_path: Path, pki: PKI
) -> None:
    kube_server.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
            "data": {
                "client-ca-file": pki.client_ca.pem.decode(),
                "requestheader-client-ca-file": pki.proxy_ca.pem.decode(),
                "requestheader-allowed-names": '["front-proxy-client"]',
                "requestheader-username-headers": '["X-Remote-User"]',
                "requestheader-group-headers": '["X-Remote-Group"]',
                "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
            },
        }
    )
    kube_server.auth.allow("metric-readers", "get", "*", group="external.metrics.k8s.io")
    fleet(kube_server, "ok")
    # No Prometheus listens at this URL: every reconcile counts a metrics error and holds.
    dead = f"http://127.0.0.1:{_free_port()}"
    kube_server.create(ias("ok", "ok", metrics={"prometheus": {"url": dead, "timeout": "1s"}}))
    # A pool that does not exist: counted as a kube error (target resolution).
    kube_server.create(ias("lost", "nowhere", metrics={"prometheus": {"url": dead, "timeout": "1s"}}))
    mport, hport, eport = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IAS_LEASE_NAMESPACE": NS}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler", "run",
        "--kubeconfig", str(kubeconfig_path),
        "--metrics-host", "127.0.0.1", "--metrics-port", str(mport),
        "--health-host", "127.0.0.1", "--health-port", str(hport),
        "--external-metrics-host", "127.0.0.1", "--external-metrics-port", str(eport),
        "--tls-cert-file", str(pki.serving.cert), "--tls-key-file", str(pki.serving.key),
        "--log-format", "console",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:

            async def scrape() -> dict[str, dict[str, float]] | None:
                async with http.get(f"http://127.0.0.1:{mport}/metrics") as r:
                    text = await r.text()
                got = {
                    n: _samples(text, f"inference_autoscaler_{n}")
                    for n in ("reconcile_duration_seconds_count", "errors_total", "leader", "desired_replicas")
                }
                ready = (
                    got["leader"].get("") == 1.0
                    and got["reconcile_duration_seconds_count"].get("", 0) >= 3
                    and got["errors_total"].get('{kind="metrics"}', 0) >= 1
                    and got["errors_total"].get('{kind="kube"}', 0) >= 1
                    and any('inferenceautoscaler="ok"' in k for k in got["desired_replicas"])
                )
                return got if ready else None

            got = await _until(scrape, within=30)
            assert set(k.split('"')[1] for k in got["errors_total"]) <= {
                "metrics", "kube", "actuation", "spec", "internal"
            }  # fmt: skip
            async with http.get(f"http://127.0.0.1:{hport}/readyz") as r:
                assert r.status == 200 and "leader" in await r.text()

            # The external metrics API: TLS with a client certificate, SubjectAccessReview by the API server.
            ctx = ssl.create_default_context(cafile=str(pki.serving_ca.path))
            ctx.load_cert_chain(str(pki.alice.cert), str(pki.alice.key))
            url = (
                f"https://127.0.0.1:{eport}/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/"
                "inference_autoscaler_desired_replicas?labelSelector=inferenceautoscaler%3Dok,role%3Dprefill"
            )
            async with http.get(url, ssl=ctx) as r:
                body = await r.json()
                assert r.status == 200, body
            assert [i["value"] for i in body["items"]] == ["1"]  # holds at the current replicas
            assert kube_server.request_count("POST", "subjectaccessreviews") >= 1
            anonymous = ssl.create_default_context(cafile=str(pki.serving_ca.path))
            async with http.get(url, ssl=anonymous) as r:  # no client certificate → not authenticated
                assert r.status == 401
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            pytest.fail("run did not stop within 20 s of SIGTERM")
        assert proc.stdout is not None
        log = (await proc.stdout.read()).decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    # Graceful stop released the Lease and closed every port.
    lease = kube_server.get("coordination.k8s.io/v1", "Lease", "inference-autoscaler", NS)
    assert not lease["spec"].get("holderIdentity")
    for port in (mport, hport, eport):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
