"""Fuzzing the live server over TLS: arbitrary paths, selectors and headers never produce a 5xx or a crash.

The board holds only complete, fresh decisions, so the one designed 5xx (503: a matched series has no value)
cannot legitimately occur; any 5xx is a bug.
"""

from __future__ import annotations

import json
import ssl
import string
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from autoscaler.adapters.apiserver_auth import AllowAuthenticated, AuthenticationConfig
from autoscaler.adapters.board import MemoryDecisionBoard
from autoscaler.adapters.metrics_api import METRICS, MetricsAPIServer
from autoscaler.core.types import Role, RoleObservation
from tests.fixtures.decisions import make_record
from tests.fixtures.pki import PKI

NOW = 1_700_000_000.0
BASE = "/apis/external.metrics.k8s.io/v1beta1"


@pytest.fixture
async def fuzz_target(pki: PKI) -> AsyncIterator[tuple[MetricsAPIServer, aiohttp.ClientSession]]:
    board = MemoryDecisionBoard()
    full = {
        Role.PREFILL: RoleObservation(replicas=3, ready=3, ttft=1.5, itl=0.01, queue_depth=12.0),
        Role.DECODE: RoleObservation(replicas=6, ready=0, ttft=0.5, itl=0.04, queue_depth=3.0),
    }
    board.publish(make_record("llama", roles=full, time=NOW))
    board.publish(make_record("b", namespace="x", labels={"app.kubernetes.io/name": "b"}, roles=full, time=NOW))
    cfg = AuthenticationConfig.from_files(
        client_ca_file=pki.client_ca.path, requestheader_client_ca_file=pki.proxy_ca.path,
        requestheader_allowed_names=("front-proxy-client",),
    )
    srv = MetricsAPIServer.create(
        board, cert_file=str(pki.serving.cert), key_file=str(pki.serving.key), auth_config=cfg,
        authorizer=AllowAuthenticated(), host="127.0.0.1", port=0, clock=lambda: NOW,
    )
    ctx = ssl.create_default_context(cafile=str(pki.serving_ca.path))
    ctx.load_cert_chain(pki.proxy_client.cert, pki.proxy_client.key)
    async with srv, aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=4)) as session:
        yield srv, session


_segment = st.one_of(
    st.sampled_from(["apis", "external.metrics.k8s.io", "v1beta1", "namespaces", "serving", "x", "openapi", "v3",
                     "healthz", "readyz", "..", ".", "", "%00", *METRICS]),
    st.text(min_size=0, max_size=30).map(lambda t: quote(t, safe="")),
)
_path = st.one_of(
    st.lists(_segment, max_size=8).map(lambda segs: "/" + "/".join(segs)),
    st.tuples(_segment, _segment).map(lambda t: f"{BASE}/namespaces/{t[0]}/{t[1]}"),
    st.sampled_from(sorted(METRICS)).map(lambda m: f"{BASE}/namespaces/serving/{m}"),
)
_selector_chars = string.ascii_letters + string.digits + "=!,()<> ._-/"
_selector = st.one_of(
    st.text(alphabet=_selector_chars, max_size=80),
    st.text(max_size=40),
    st.sampled_from(["role=prefill", "inferenceautoscaler in (llama,b)", "!role", "pool", "role notin ()"]),
)
_header_name = st.sampled_from(["X-Remote-User", "X-Remote-Group", "X-Remote-Extra-Scopes", "Authorization",
                                "Accept", "Content-Type", "X-Other"])
_header_value = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_path, selector=st.one_of(st.none(), _selector),
       headers=st.dictionaries(_header_name, _header_value, max_size=4),
       method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "DELETE"]))
async def test_no_5xx_and_errors_are_status_bodies(
    fuzz_target: tuple[MetricsAPIServer, aiohttp.ClientSession], path: str, selector: str | None,
    headers: dict[str, str], method: str,
) -> None:
    srv, session = fuzz_target
    query = "" if selector is None else "?labelSelector=" + quote(selector, safe="")
    url = URL(f"https://127.0.0.1:{srv.port}{path}{query}", encoded=True)
    headers = {k: v.strip() for k, v in headers.items()}
    async with session.request(method, url, headers=headers) as resp:
        body = await resp.read()
        assert resp.status < 500, (resp.status, body[:300])
        if resp.status >= 400 and method != "HEAD" and resp.content_type == "application/json":
            status = json.loads(body)
            assert status["kind"] == "Status" and status["code"] == resp.status
