"""The real ``inference-autoscaler run`` entry point, as a subprocess against the local control plane: it serves
``/metrics`` (fed with reconcile durations, errors by kind and leader status) and the external metrics API
(authenticated from the apiserver's own extension-apiserver-authentication ConfigMap, authorised by a
SubjectAccessReview that the real apiserver answers from RBAC), on one decision board, and stops cleanly on
SIGTERM."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from localcluster.procs import free_port
from tests.fixtures.controller import NS, fleet, ias
from tests.real.runproc import run_process

__all__ = ["run_process"]

pytestmark = pytest.mark.asyncio

READER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "ias-test-external-metrics-reader"},
    "rules": [{"apiGroups": ["external.metrics.k8s.io"], "resources": ["*"], "verbs": ["get", "list"]}],
}
READER_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": {"name": "ias-test-external-metrics-reader"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": READER_ROLE["metadata"]["name"]},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "metric-readers"}],
}


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


@pytest.fixture
def metric_readers(kube_server: Any) -> Iterator[None]:
    """RBAC on the real apiserver: the group ``metric-readers`` may read external metrics (removed after)."""
    for obj in (READER_ROLE, READER_BINDING):
        kube_server.kube.create(obj)
    try:
        yield
    finally:
        kube_server.kube.delete("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", READER_BINDING["metadata"]["name"])
        kube_server.kube.delete("rbac.authorization.k8s.io/v1", "ClusterRole", READER_ROLE["metadata"]["name"])


@pytest.mark.usefixtures("metric_readers")
async def test_run_serves_metrics_and_the_external_metrics_api(kube_server: Any, run_process: Any, tmp_path) -> None:
    plane = kube_server.plane
    # The apiserver publishes its client CA in kube-system/extension-apiserver-authentication, which the
    # controller reads: a client certificate from that CA authenticates (CN = user, O = group).
    alice = plane.ca.issue(f"alice-{tmp_path.name}", "alice", orgs=("metric-readers",))
    serving = plane.issue_serving_cert(f"ias-serving-{tmp_path.name}", ("127.0.0.1", "localhost"))
    fleet(kube_server, "ok")
    # No Prometheus listens at this URL: every reconcile counts a metrics error and holds.
    dead = f"http://127.0.0.1:{free_port()}"
    kube_server.create(ias("ok", "ok", metrics={"prometheus": {"url": dead, "timeout": "1s"}}))
    # A pool that does not exist: counted as a kube error (target resolution).
    kube_server.create(ias("lost", "nowhere", metrics={"prometheus": {"url": dead, "timeout": "1s"}}))
    eport = free_port()
    rp = await run_process(
        "run", "--external-metrics-host", "127.0.0.1", "--external-metrics-port", str(eport),
        "--tls-cert-file", str(serving.cert), "--tls-key-file", str(serving.key),
        env={"IAS_LEASE_NAMESPACE": NS},
    )  # fmt: skip
    mport, hport = rp.metrics_port, rp.health_port
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

        got = await _until(scrape, within=60)
        assert set(k.split('"')[1] for k in got["errors_total"]) <= {
            "metrics", "kube", "actuation", "spec", "internal"
        }  # fmt: skip
        assert await rp.role() == "leader"

        # The external metrics API: TLS with a client certificate, SubjectAccessReview by the real apiserver.
        ctx = ssl.create_default_context(cafile=str(plane.ca.path))
        ctx.load_cert_chain(str(alice.cert), str(alice.key))
        url = (
            f"https://127.0.0.1:{eport}/apis/external.metrics.k8s.io/v1beta1/namespaces/{NS}/"
            "inference_autoscaler_desired_replicas?labelSelector=inferenceautoscaler%3Dok,role%3Dprefill"
        )
        async with http.get(url, ssl=ctx) as r:
            body = await r.json()
            assert r.status == 200, body
        assert [i["value"] for i in body["items"]] == ["1"]  # holds at the current replicas
        sars = [r for r in rp.proxy.requests if r.method == "POST" and r.path.endswith("/subjectaccessreviews")]
        assert sars and all(r.status == 201 for r in sars), [(r.path, r.status) for r in sars]
        anonymous = ssl.create_default_context(cafile=str(plane.ca.path))
        async with http.get(url, ssl=anonymous) as r:  # no client certificate → not authenticated
            assert r.status == 401
        # Bob has a valid certificate but no RBAC grant: the apiserver's SubjectAccessReview says no.
        bob = plane.ca.issue(f"bob-{tmp_path.name}", "bob", orgs=("other",))
        ctx_bob = ssl.create_default_context(cafile=str(plane.ca.path))
        ctx_bob.load_cert_chain(str(bob.cert), str(bob.key))
        async with http.get(url, ssl=ctx_bob) as r:
            assert r.status == 403, await r.text()

    code = await rp.stop()
    assert code == 0, rp.proc.tail()
    # Graceful stop released the Lease and closed every port.
    lease = kube_server.get("coordination.k8s.io/v1", "Lease", "inference-autoscaler", NS)
    assert not lease["spec"].get("holderIdentity")
    for port in (mport, hport, eport):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
