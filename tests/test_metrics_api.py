"""The external metrics API over real TLS on loopback: authentication, authorization, values and errors."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from autoscaler.adapters.apiserver_auth import AllowAuthenticated, AuthenticationConfig, KubeDelegatedAuth
from autoscaler.adapters.board import MemoryDecisionBoard
from autoscaler.adapters.metrics_api import MetricsAPIServer
from autoscaler.core.types import Role, RoleObservation
from tests.fixtures.decisions import make_record
from tests.fixtures.kubefake import FakeAuthAPI
from tests.fixtures.pki import PKI, Issued

NOW = 1_700_000_000.0
BASE = "/apis/external.metrics.k8s.io/v1beta1"
DESIRED = f"{BASE}/namespaces/serving/inference_autoscaler_desired_replicas"


def auth_config(pki: PKI, allowed: tuple[str, ...] = ("front-proxy-client",)) -> AuthenticationConfig:
    return AuthenticationConfig.from_files(
        client_ca_file=pki.client_ca.path,
        requestheader_client_ca_file=pki.proxy_ca.path,
        requestheader_allowed_names=allowed,
    )


def client_ssl(pki: PKI, cert: Issued | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.serving_ca.path))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


@pytest.fixture
def board() -> MemoryDecisionBoard:
    b = MemoryDecisionBoard()
    b.publish(make_record("llama", labels={"team": "search"}, time=NOW))
    b.publish(make_record("mistral", labels={"team": "ads"}, time=NOW, desired={Role.BOTH: 2},
                          roles={Role.BOTH: RoleObservation(replicas=2, ready=2)}))
    b.publish(make_record("llama", namespace="other", time=NOW))
    return b


@pytest.fixture
async def server(
    pki: PKI, board: MemoryDecisionBoard, kube_api_client: client.ApiClient, fake_auth_api: FakeAuthAPI
) -> AsyncIterator[MetricsAPIServer]:
    fake_auth_api.tokens.update({
        "good-token": ("system:serviceaccount:kube-system:horizontal-pod-autoscaler", ["system:serviceaccounts"]),
        "denied-token": ("mallory", ["system:authenticated"]),
    })
    fake_auth_api.allowed_users.update(
        {"system:serviceaccount:kube-system:horizontal-pod-autoscaler", "hpa-controller", "alice"}
    )
    delegated = KubeDelegatedAuth(kube_api_client)
    srv = MetricsAPIServer.create(
        board, cert_file=str(pki.serving.cert), key_file=str(pki.serving.key), auth_config=auth_config(pki),
        authorizer=delegated, token_authenticator=delegated, host="127.0.0.1", port=0, clock=lambda: NOW + 5,
        header_timeout_s=0.5,
    )
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


Get = Callable[..., Any]


@pytest.fixture
def get(server: MetricsAPIServer, pki: PKI) -> Get:
    async def _get(path: str, *, cert: Issued | None = None, headers: dict[str, str] | None = None,
                   params: dict[str, str] | None = None) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.get(
            f"https://127.0.0.1:{server.port}{path}", ssl=client_ssl(pki, cert), headers=headers, params=params,
        ) as resp:
            body = await resp.json(content_type=None) if resp.content_type == "application/json" else await resp.text()
            return resp.status, body
    return _get


PROXY_HEADERS = {"X-Remote-User": "hpa-controller", "X-Remote-Group": "system:authenticated"}


async def test_front_proxy_certificate_with_allowed_name_reads_discovery_and_values(get: Get, pki: PKI) -> None:
    status, body = await get(BASE, cert=pki.proxy_client, headers=PROXY_HEADERS)
    assert status == 200, body
    assert body["kind"] == "APIResourceList"
    assert {r["name"] for r in body["resources"]} == {
        "inference_autoscaler_desired_replicas", "inference_autoscaler_ttft_slo_ratio",
        "inference_autoscaler_itl_slo_ratio", "inference_autoscaler_queue_per_replica",
        "inference_autoscaler_queue_depth",
    }
    status, body = await get(DESIRED, cert=pki.proxy_client, headers=PROXY_HEADERS,
                             params={"labelSelector": "inferenceautoscaler=llama,role=prefill"})
    assert status == 200, body
    assert body["kind"] == "ExternalMetricValueList"
    assert body["apiVersion"] == "external.metrics.k8s.io/v1beta1"
    [item] = body["items"]
    assert item["value"] == "4"
    assert item["metricName"] == "inference_autoscaler_desired_replicas"
    assert item["metricLabels"] == {"team": "search", "inferenceautoscaler": "llama", "pool": "llama-pool",
                                    "role": "prefill"}
    assert item["timestamp"] == "2023-11-14T22:13:20Z"
    assert item["windowSeconds"] == 60


@pytest.mark.parametrize(
    ("metric", "selector", "expected"),
    [
        ("inference_autoscaler_desired_replicas", "inferenceautoscaler=llama,role=decode", ["6"]),
        ("inference_autoscaler_desired_replicas", "team in (search, ads)", ["4", "6", "2"]),
        ("inference_autoscaler_desired_replicas", "team notin (search),role", ["2"]),
        ("inference_autoscaler_ttft_slo_ratio", "inferenceautoscaler=llama,role=prefill", ["1500m"]),
        ("inference_autoscaler_itl_slo_ratio", "inferenceautoscaler==llama,role!=prefill", ["500m"]),
        ("inference_autoscaler_queue_per_replica", "pool=llama-pool,role=prefill", ["4"]),
        ("inference_autoscaler_queue_per_replica", "pool=llama-pool,role=decode", ["500m"]),
    ],
)
async def test_metric_values_follow_the_selector(get: Get, pki: PKI, metric: str, selector: str,
                                                  expected: list[str]) -> None:
    status, body = await get(f"{BASE}/namespaces/serving/{metric}", cert=pki.alice,
                             params={"labelSelector": selector})
    assert status == 200, body
    assert [i["value"] for i in body["items"]] == expected


@pytest.mark.parametrize(
    ("path", "selector", "code", "reason", "message_part"),
    [
        (f"{BASE}/namespaces/serving/no_such_metric", "", 404, "NotFound", "unknown external metric"),
        (DESIRED, "inferenceautoscaler=nobody", 404, "NotFound", "matches label selector"),
        (DESIRED, "role in (", 400, "BadRequest", "invalid labelSelector"),
        (DESIRED, "Bad Key=1", 400, "BadRequest", "invalid labelSelector"),
        (f"{BASE}/namespaces/Serving/inference_autoscaler_desired_replicas", "", 400, "BadRequest", "namespace"),
        # prefill has no ITL observation: a matched series without a value is an explicit error, not a gap.
        (f"{BASE}/namespaces/serving/inference_autoscaler_itl_slo_ratio", "inferenceautoscaler=llama", 503,
         "ServiceUnavailable", "llama/prefill: no value yet"),
        (f"{BASE}/namespaces/serving/inference_autoscaler_desired_replicas/extra", "", 404, "NotFound", ""),
        ("/apis/metrics.k8s.io/v1beta1", "", 404, "NotFound", ""),
    ],
)
async def test_errors_are_status_bodies(get: Get, pki: PKI, path: str, selector: str, code: int, reason: str,
                                        message_part: str) -> None:
    status, body = await get(path, cert=pki.alice, params={"labelSelector": selector} if selector else None)
    assert status == code, body
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["code"] == code and body["reason"] == reason
    assert message_part in body["message"]


async def test_stale_decisions_are_not_served(pki: PKI, board: MemoryDecisionBoard) -> None:
    srv = MetricsAPIServer.create(
        board, cert_file=str(pki.serving.cert), key_file=str(pki.serving.key), auth_config=auth_config(pki),
        authorizer=AllowAuthenticated(), host="127.0.0.1", port=0, clock=lambda: NOW + 3600, stale_after_s=600,
    )
    async with srv, aiohttp.ClientSession() as session, session.get(
        f"https://127.0.0.1:{srv.port}{DESIRED}", ssl=client_ssl(pki, pki.alice),
        params={"labelSelector": "inferenceautoscaler=llama"},
    ) as resp:
        body = await resp.json()
        assert resp.status == 503
        assert "3600s old" in body["message"]
        assert resp.headers["Retry-After"] == "10"


async def test_no_credentials_is_401(get: Get) -> None:
    status, body = await get(DESIRED)
    assert status == 401
    assert body["reason"] == "Unauthorized"


async def test_remote_user_header_without_front_proxy_certificate_is_ignored(get: Get, pki: PKI) -> None:
    status, _ = await get(DESIRED, headers=PROXY_HEADERS)
    assert status == 401
    # With an x509 user certificate the header is ignored too: the caller is alice, whom the SAR allows,
    # and "hpa-controller" in the header changes nothing; mallory in the header cannot borrow alice's rights.
    status, _ = await get(BASE, cert=pki.alice, headers={"X-Remote-User": "mallory"})
    assert status == 200


async def test_front_proxy_with_disallowed_common_name_is_401(get: Get, pki: PKI) -> None:
    status, body = await get(BASE, cert=pki.proxy_wrong_cn, headers=PROXY_HEADERS)
    assert status == 401
    assert "not-the-aggregator" in body["message"]


async def test_front_proxy_without_user_header_is_401(get: Get, pki: PKI) -> None:
    status, body = await get(BASE, cert=pki.proxy_client)
    assert status == 401
    assert "without a user header" in body["message"]


async def test_untrusted_client_certificate_is_refused(get: Get, pki: PKI) -> None:
    # The TLS layer verifies any certificate a client presents; an untrusted one fails the handshake
    # (stdlib ssl cannot request a certificate without verifying it), so no request is ever served.
    with pytest.raises(aiohttp.ClientError):
        await get(BASE, cert=pki.rogue, headers=PROXY_HEADERS)


async def test_front_proxy_user_denied_by_subject_access_review_is_403(get: Get, pki: PKI,
                                                                       fake_auth_api: FakeAuthAPI) -> None:
    status, body = await get(DESIRED, cert=pki.proxy_client, headers={"X-Remote-User": "mallory"})
    assert status == 403
    assert body["reason"] == "Forbidden"
    assert "mallory" in body["message"] and "no RBAC rule allows it" in body["message"]
    [(_kind, sar)] = [c for c in fake_auth_api.calls if c[0] == "SubjectAccessReview"]
    assert sar["spec"]["resourceAttributes"] == {
        "group": "external.metrics.k8s.io", "version": "v1beta1", "resource": "inference_autoscaler_desired_replicas",
        "namespace": "serving", "verb": "get",
    }


async def test_bearer_tokens_go_through_token_review_and_sar(get: Get, fake_auth_api: FakeAuthAPI) -> None:
    ok = {"Authorization": "Bearer good-token"}
    status, body = await get(DESIRED, headers=ok, params={"labelSelector": "inferenceautoscaler=mistral"})
    assert status == 200, body
    assert [i["value"] for i in body["items"]] == ["2"]
    status, body = await get(DESIRED, headers={"Authorization": "Bearer denied-token"})
    assert status == 403, body
    status, body = await get(DESIRED, headers={"Authorization": "Bearer forged"})
    assert status == 401, body
    # A second identical request is answered from the caches: no new reviews.
    before = len(fake_auth_api.calls)
    status, _ = await get(DESIRED, headers=ok, params={"labelSelector": "inferenceautoscaler=mistral"})
    assert status == 200
    assert len(fake_auth_api.calls) == before


async def test_auth_backend_down_is_503_not_a_crash(pki: PKI, board: MemoryDecisionBoard) -> None:
    api = client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))  # nothing listens on port 9
    delegated = KubeDelegatedAuth(api, timeout_s=2)
    srv = MetricsAPIServer.create(
        board, cert_file=str(pki.serving.cert), key_file=str(pki.serving.key), auth_config=auth_config(pki),
        authorizer=delegated, token_authenticator=delegated, host="127.0.0.1", port=0,
    )
    try:
        async with srv, aiohttp.ClientSession() as session, session.get(
            f"https://127.0.0.1:{srv.port}{DESIRED}", ssl=client_ssl(pki, None),
            headers={"Authorization": "Bearer t"},
        ) as resp:
            assert resp.status == 503
            assert (await resp.json())["reason"] == "ServiceUnavailable"
    finally:
        await api.close()


async def test_probes_need_no_credentials(get: Get) -> None:
    for path in ("/healthz", "/readyz"):
        status, body = await get(path)
        assert (status, body) == (200, "ok")


async def test_openapi_document_lists_the_paths(get: Get, pki: PKI) -> None:
    status, index = await get("/openapi/v3", cert=pki.alice)
    assert status == 200
    url = index["paths"]["apis/external.metrics.k8s.io/v1beta1"]["serverRelativeURL"]
    status, doc = await get(url, cert=pki.alice)
    assert status == 200
    assert doc["openapi"].startswith("3.")
    assert f"{BASE}/namespaces/{{namespace}}/{{metric}}" in doc["paths"]
    assert {"APIResourceList", "ExternalMetricValueList", "Status"} <= set(doc["components"]["schemas"])


async def test_overlong_query_is_414(get: Get, pki: PKI) -> None:
    status, body = await get(DESIRED, cert=pki.alice, params={"labelSelector": "a=" + "b" * 5000})
    assert status == 414
    assert body["reason"] == "RequestURITooLong"


async def test_methods_other_than_get_are_405(server: MetricsAPIServer, pki: PKI) -> None:
    async with aiohttp.ClientSession() as session, session.post(
        f"https://127.0.0.1:{server.port}{DESIRED}", ssl=client_ssl(pki, pki.alice), data=b"{}"
    ) as resp:
        assert resp.status == 405
        assert (await resp.json())["reason"] == "MethodNotAllowed"


async def test_slow_request_head_is_cut_off(server: MetricsAPIServer, pki: PKI) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ssl(pki, pki.alice),
                                                   server_hostname="localhost")
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # head never completed
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=5)  # server closes after header_timeout_s=0.5
        assert data == b""
        for _ in range(100):  # connection_lost follows the close asynchronously
            if server.guard.open_connections == 0:
                break
            await asyncio.sleep(0.02)
        assert server.guard.open_connections == 0
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()


async def test_keep_alive_connection_serves_many_requests(server: MetricsAPIServer, pki: PKI) -> None:
    conn = aiohttp.TCPConnector(ssl=client_ssl(pki, pki.alice), limit=1)
    async with aiohttp.ClientSession(connector=conn) as session:
        for _ in range(5):
            async with session.get(f"https://127.0.0.1:{server.port}{BASE}") as resp:
                assert resp.status == 200
                await resp.read()
        await asyncio.sleep(0.8)  # longer than header_timeout_s: an idle keep-alive is not a slow head
        async with session.get(f"https://127.0.0.1:{server.port}{BASE}") as resp:
            assert resp.status == 200
