"""Serving-certificate reload, self-signed fallback, and a real kubectl reading the API."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
from pathlib import Path

import aiohttp
import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding

from autoscaler.adapters.apiserver_auth import AllowAuthenticated, AuthenticationConfig
from autoscaler.adapters.board import MemoryDecisionBoard
from autoscaler.adapters.metrics_api import MetricsAPIServer
from autoscaler.adapters.tls import ServingTLS
from autoscaler.errors import InputError
from tests.fixtures.decisions import make_record
from tests.fixtures.pki import CA, PKI

NOW = 1_700_000_000.0
BASE = "/apis/external.metrics.k8s.io/v1beta1"


def _config(pki: PKI) -> AuthenticationConfig:
    return AuthenticationConfig.from_files(
        client_ca_file=pki.client_ca.path, requestheader_client_ca_file=pki.proxy_ca.path,
        requestheader_allowed_names=("front-proxy-client",),
    )


async def _served_cert(port: int) -> bytes:
    """DER of the certificate the server presents (no verification: we only look at it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert der is not None
        return bytes(der)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_replaced_certificate_files_are_served_on_the_next_connection(pki: PKI, tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(pki.serving.cert, cert)
    shutil.copy(pki.serving.key, key)
    srv = MetricsAPIServer.create(
        MemoryDecisionBoard(), cert_file=str(cert), key_file=str(key), auth_config=_config(pki),
        authorizer=AllowAuthenticated(), host="127.0.0.1", port=0,
    )
    srv.tls._interval = 0.0  # check on every handshake so the test does not wait for the 1 s throttle
    async with srv:
        first = await _served_cert(srv.port)
        assert first == pki.serving.cert_obj.public_bytes(Encoding.DER)
        new_ca = CA("rotated-ca", tmp_path)
        rotated = new_ca.issue("rotated", "inference-autoscaler", server=True, hosts=("127.0.0.1",))
        # Kubernetes updates Secret volumes by swapping a symlink; a rename is the same atomic change.
        shutil.copy(rotated.key, tmp_path / "new.key")
        shutil.copy(rotated.cert, tmp_path / "new.crt")
        os.replace(tmp_path / "new.key", key)
        os.replace(tmp_path / "new.crt", cert)
        second = await _served_cert(srv.port)
        assert second != first
        assert second == ssl.PEM_cert_to_DER_cert(cert.read_text())
        assert srv.tls.reloads == 1
        # A half-written pair (garbage) keeps the last good certificate.
        cert.write_text("not a certificate")
        assert await _served_cert(srv.port) == second


def test_self_signed_pair_is_generated_and_cleaned_up(caplog: pytest.LogCaptureFixture) -> None:
    tls = ServingTLS(None, None, self_signed_hosts=("inference-autoscaler.svc", "127.0.0.1"))
    try:
        assert tls.self_signed
        assert tls.cert_path.exists() and oct(tls.key_path.stat().st_mode & 0o777) == "0o600"
    finally:
        tls.close()
    assert not tls.cert_path.exists()


@pytest.mark.parametrize(
    ("cert", "key", "match"),
    [("missing.crt", "missing.key", "cannot read"), ("garbage.crt", "garbage.key", "cannot load")],
)
def test_bad_certificate_files_are_input_errors(tmp_path: Path, cert: str, key: str, match: str) -> None:
    (tmp_path / "garbage.crt").write_text("x")
    (tmp_path / "garbage.key").write_text("y")
    with pytest.raises(InputError, match=match):
        ServingTLS(tmp_path / cert, tmp_path / key)


def test_authentication_configmap_data_is_parsed_and_checked(pki: PKI) -> None:
    data = {
        "client-ca-file": pki.client_ca.pem.decode(),
        "requestheader-client-ca-file": pki.proxy_ca.pem.decode(),
        "requestheader-allowed-names": '["front-proxy-client"]',
        "requestheader-username-headers": '["X-Remote-User"]',
        "requestheader-group-headers": '["X-Remote-Group"]',
        "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
    }
    cfg = AuthenticationConfig.from_configmap_data(data)
    assert cfg.requestheader_allowed_names == ("front-proxy-client",)
    assert len(cfg.proxy_cas) == 1 and len(cfg.client_cas) == 1
    with pytest.raises(InputError, match="requestheader-allowed-names"):
        AuthenticationConfig.from_configmap_data({**data, "requestheader-allowed-names": "front-proxy-client"})
    with pytest.raises(InputError, match="client-ca-file"):
        AuthenticationConfig.from_configmap_data({**data, "client-ca-file": "-----BEGIN CERTIFICATE-----\nxx"})


async def test_rotating_the_front_proxy_ca_out_stops_its_certificates(pki: PKI) -> None:
    srv = MetricsAPIServer.create(
        MemoryDecisionBoard(), cert_file=str(pki.serving.cert), key_file=str(pki.serving.key),
        auth_config=_config(pki), authorizer=AllowAuthenticated(), host="127.0.0.1", port=0,
    )
    ctx = ssl.create_default_context(cafile=str(pki.serving_ca.path))
    ctx.load_cert_chain(pki.proxy_client.cert, pki.proxy_client.key)
    headers = {"X-Remote-User": "hpa"}
    async with srv, aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.get(f"https://127.0.0.1:{srv.port}{BASE}", ssl=ctx, headers=headers) as r:
            assert r.status == 200
        srv.update_auth_config(AuthenticationConfig.from_files(client_ca_file=pki.client_ca.path))
        with pytest.raises(aiohttp.ClientError):
            async with s.get(f"https://127.0.0.1:{srv.port}{BASE}", ssl=ctx, headers=headers) as r:
                await r.read()


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on PATH")
async def test_kubectl_get_raw_reads_discovery_and_a_value(pki: PKI, tmp_path: Path) -> None:
    board = MemoryDecisionBoard()
    board.publish(make_record("llama", time=NOW))
    srv = MetricsAPIServer.create(
        board, cert_file=str(pki.serving.cert), key_file=str(pki.serving.key), auth_config=_config(pki),
        authorizer=AllowAuthenticated(), host="127.0.0.1", port=0, clock=lambda: NOW,
    )
    async with srv:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "t",
            "clusters": [{"name": "t", "cluster": {"server": f"https://127.0.0.1:{srv.port}",
                                                    "certificate-authority": str(pki.serving_ca.path)}}],
            "users": [{"name": "alice", "user": {"client-certificate": str(pki.alice.cert),
                                                  "client-key": str(pki.alice.key)}}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "alice"}}],
        }))

        async def kubectl(*args: str) -> tuple[int, str, str]:
            proc = await asyncio.create_subprocess_exec(
                "kubectl", "--kubeconfig", str(kubeconfig), *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "KUBECACHEDIR": str(tmp_path / "cache"), "HOME": str(tmp_path)},
            )
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
            return proc.returncode or 0, out.decode(), err.decode()

        rc, out, err = await kubectl("get", "--raw", BASE)
        assert rc == 0, err
        assert json.loads(out)["kind"] == "APIResourceList"
        selector = "inferenceautoscaler%3Dllama%2Crole%3Dprefill"
        rc, out, err = await kubectl(
            "get", "--raw", f"{BASE}/namespaces/serving/inference_autoscaler_desired_replicas?labelSelector={selector}"
        )
        assert rc == 0, err
        [item] = json.loads(out)["items"]
        assert item["value"] == "4" and item["metricLabels"]["role"] == "prefill"
        rc, out, err = await kubectl("get", "--raw", f"{BASE}/namespaces/serving/nope")
        assert rc != 0
        assert "unknown external metric" in err
