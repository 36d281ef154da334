"""The external metrics API behind the real aggregation layer, read by the real HPA controller.

The controller (``run_controller``, as ``inference-autoscaler run`` wires it, with a fake metrics source) serves
``external.metrics.k8s.io/v1beta1`` on loopback. The real kube-apiserver reaches it through
``APIService v1beta1.external.metrics.k8s.io`` and an ``ExternalName`` Service pointing at ``localhost`` (there is
no kube-proxy here, and EndpointSlices reject loopback addresses); the aggregator verifies our serving certificate
(SAN ``<service>.<namespace>.svc``) against the APIService's ``caBundle``. Our server authenticates the aggregator
by its front-proxy client certificate (from the real ``extension-apiserver-authentication`` ConfigMap) and
authorizes every read with the real apiserver's SubjectAccessReview. kube-controller-manager's HPA controller
then scales the Deployments from the manifests' per-role HPA examples.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.fixtures.aggregation import GROUP_PATH, HPA_USER, ROOT, MetricsAPI, poll
from tests.fixtures.cluster import TestCluster, kubectl
from tests.fixtures.controller import (
    NS,
    eventually,
    fleet,
    ias,
    metrics_obs,
    replicas,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_leaked_tasks")]


async def _raw(kubeconfig: Path, path: str) -> dict[str, Any]:
    return dict(json.loads(await kubectl(kubeconfig, "get", "--raw", path)))


def _values(doc: dict[str, Any]) -> dict[str, str]:
    return {item["metricLabels"]["role"]: item["value"] for item in doc["items"]}


async def _publishing(api: MetricsAPI, name: str) -> str:
    """An HPA-mode autoscaler ``name`` whose desired replicas (4 prefill, 6 decode) the aggregator serves;
    the raw ExternalMetricValueList."""
    fleet(api.cluster, name)
    api.cluster.create(ias(name, name, actuation="HPA"))
    api.metrics.set(f"{NS}/{name}", prefill=metrics_obs(35), decode=metrics_obs(52))
    path = f"{GROUP_PATH}/namespaces/{NS}/inference_autoscaler_desired_replicas?labelSelector=inferenceautoscaler%3D{name}"
    # NotFound until the first decision is on the board, then the controller's desired replicas.
    return str(await poll(lambda: kubectl(api.kubeconfig, "get", "--raw", path, check=False),
                           lambda text: text.startswith("{") and _values(json.loads(text)) == {"prefill": "4",
                                                                                             "decode": "6"}))


async def test_apiservice_is_available_and_serves_the_controllers_decisions(metrics_api: MetricsAPI):
    cluster = metrics_api.cluster
    out = await _publishing(metrics_api, "agg")
    assert json.loads(out)["kind"] == "ExternalMetricValueList"
    # HPA mode: the controller publishes and never scales the Deployments itself.
    assert replicas(cluster, "agg-prefill") == 1 and replicas(cluster, "agg-decode") == 1
    discovery = await _raw(metrics_api.kubeconfig, GROUP_PATH)
    assert "inference_autoscaler_desired_replicas" in {r["name"] for r in discovery["resources"]}


def _service_account_token(cluster: TestCluster, name: str) -> str:
    """A token of a fresh ServiceAccount in ``serving``, from the TokenRequest API."""
    cluster.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": NS}})
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}}
    out = cluster.kube.request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts/{name}/token", body)
    return str(out["status"]["token"])


def _front_proxy_context(cluster: TestCluster) -> ssl.SSLContext:
    """TLS as the aggregator presents itself: the front-proxy client certificate; our server verified."""
    assert cluster.plane.ca is not None
    ctx = ssl.create_default_context(cafile=str(cluster.plane.ca.path))
    work = cluster.plane.workdir
    ctx.load_cert_chain(str(work / "front-proxy-client.crt"), str(work / "front-proxy-client.key"))
    return ctx


async def test_callers_are_authenticated_and_authorized(metrics_api: MetricsAPI, tmp_path: Path):
    cluster = metrics_api.cluster
    path = f"{GROUP_PATH}/namespaces/{NS}/inference_autoscaler_desired_replicas"
    await _publishing(metrics_api, "auth")
    assert cluster.plane.ca is not None
    anonymous = ssl.create_default_context(cafile=str(cluster.plane.ca.path))
    async with aiohttp.ClientSession() as http:
        async with http.get(metrics_api.direct_url + path, ssl=anonymous) as resp:
            assert resp.status == 401, await resp.text()
        as_proxy = _front_proxy_context(cluster)
        for user, expected in ((HPA_USER, 200), (f"system:serviceaccount:{NS}:nobody", 403)):
            headers = {"X-Remote-User": user, "X-Remote-Group": "system:serviceaccounts"}
            async with http.get(metrics_api.direct_url + path, ssl=as_proxy, headers=headers) as resp:
                assert resp.status == expected, (user, await resp.text())

    # Through the aggregator: a user RBAC does not allow is refused before our server is asked.
    token = await asyncio.to_thread(_service_account_token, cluster, "nobody")
    nobody = cluster.plane.kubeconfig(tmp_path / "nobody.kubeconfig", token=token, user="nobody")
    out = await kubectl(nobody, "get", "--raw", path, check=False)
    assert "forbidden" in out.lower(), out


async def _follows(cluster: TestCluster, want: tuple[int, int], within: float = 30.0) -> None:
    """Both Deployments at ``want`` (prefill, decode) within ``within`` s; else fail with the HPAs' status."""
    def now() -> tuple[int, int]:
        return replicas(cluster, "llama-70b-prefill"), replicas(cluster, "llama-70b-decode")
    try:
        await eventually(lambda: now() == want, within=within)
    except AssertionError:
        hpas = cluster.list_objects("autoscaling/v2", "HorizontalPodAutoscaler", NS)
        raise AssertionError(f"replicas {now()}, want {want}; HPA status: "
                             f"{[(h['metadata']['name'], h.get('status')) for h in hpas]}") from None


def _example_hpas() -> list[dict[str, Any]]:
    docs = []
    for name in ("hpa-prefill.yaml", "hpa-decode.yaml"):
        docs += [d for d in yaml.safe_load_all((ROOT / "manifests/examples/hpa-mode" / name).read_text()) if d]
    return docs


async def test_the_real_hpa_follows_the_published_replicas(metrics_api: MetricsAPI):
    """The manifests' per-role HPAs, unchanged, on kube-controller-manager's HPA controller (1 s sync here)."""
    cluster = metrics_api.cluster
    fleet(cluster, "llama-70b")
    cluster.create(ias("llama-70b", "llama-70b", actuation="HPA", max_replicas=16))
    for hpa in _example_hpas():
        assert hpa["metadata"]["namespace"] == NS
        cluster.create(hpa)
    metrics_api.metrics.set(f"{NS}/llama-70b", prefill=metrics_obs(35), decode=metrics_obs(52))
    await _follows(cluster, (4, 6))
    hpa = cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", "llama-70b-prefill", NS)
    [current] = hpa["status"]["currentMetrics"]
    assert current["external"]["metric"]["name"] == "inference_autoscaler_desired_replicas"

    # 4 -> 11 in one HPA step (the examples' Pods policy), then 11 -> 12, a change the HPA's default 10 %
    # tolerance would ignore (the examples set tolerance 0).
    metrics_api.metrics.set(f"{NS}/llama-70b", prefill=metrics_obs(105), decode=metrics_obs(52))
    await _follows(cluster, (11, 6))
    metrics_api.metrics.set(f"{NS}/llama-70b", prefill=metrics_obs(115), decode=metrics_obs(52))
    await _follows(cluster, (12, 6))
    metrics_api.metrics.set(f"{NS}/llama-70b", prefill=metrics_obs(5), decode=metrics_obs(12))
    await _follows(cluster, (1, 2))
