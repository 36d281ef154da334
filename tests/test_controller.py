"""Scenario tests of the controller against the emulated Kubernetes API server (real HTTP)."""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.controller import (
    NS,
    FakeMetrics,
    QueuePolicy,
    condition,
    eventually,
    events_for,
    fleet,
    ias,
    ias_status,
    metrics_obs,
    replicas,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
async def no_leaked_tasks():
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before - {asyncio.current_task()} if not t.done()]
    assert not leaked, f"leaked tasks: {[t.get_name() for t in leaked]}"


async def test_scales_up_and_down_through_scale(kube_server, make_controller):
    fleet(kube_server, "llama", prefill=1, decode=1)
    kube_server.create(ias("llama", "llama"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/llama", prefill=metrics_obs(35), decode=metrics_obs(52))
    await make_controller(QueuePolicy(), metrics)

    await eventually(lambda: replicas(kube_server, "llama-prefill") == 4 and replicas(kube_server, "llama-decode") == 6)
    assert kube_server.request_count("PATCH", r"/deployments/llama-prefill/scale$") == 1
    st = await eventually(lambda: ias_status(kube_server, "llama").get("roles", {}).get("decode", {}).get("current") == 6
                          and ias_status(kube_server, "llama"))
    assert st["roles"]["prefill"]["desired"] == 4
    assert st["roles"]["prefill"]["target"] == "Deployment/llama-prefill"
    assert st["summary"]["prefill"] == "4→4" and st["summary"]["decode"] == "6→6"
    assert condition(kube_server, "llama", "Ready")["status"] == "True"
    assert condition(kube_server, "llama", "TargetsResolved")["status"] == "True"
    reasons = {e["reason"] for e in events_for(kube_server, "llama")}
    assert "LoadScaleUp" in reasons

    metrics.set(f"{NS}/llama", prefill=metrics_obs(5), decode=metrics_obs(12))
    await eventually(lambda: replicas(kube_server, "llama-prefill") == 1 and replicas(kube_server, "llama-decode") == 2)
    assert "ScaleDown" in {e["reason"] for e in events_for(kube_server, "llama")}


async def test_scale_up_before_scale_down(kube_server, make_controller):
    fleet(kube_server, "mix", prefill=5, decode=1)
    kube_server.create(ias("mix", "mix"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/mix", prefill=metrics_obs(10), decode=metrics_obs(40))
    await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: replicas(kube_server, "mix-decode") == 4 and replicas(kube_server, "mix-prefill") == 1)
    patches = [r.path for r in kube_server.requests if r.method == "PATCH" and r.path.endswith("/scale")]
    assert patches[:2] == [f"/apis/apps/v1/namespaces/{NS}/deployments/mix-decode/scale",
                           f"/apis/apps/v1/namespaces/{NS}/deployments/mix-prefill/scale"]
