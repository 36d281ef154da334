"""Scenario tests of the controller against the emulated Kubernetes API server (real HTTP)."""

from __future__ import annotations

import asyncio

import pytest

from autoscaler.core.types import Role
from tests.fixtures.controller import (
    NS,
    FakeMetrics,
    QueuePolicy,
    condition,
    deployment,
    eventually,
    events_for,
    fleet,
    ias,
    ias_status,
    metrics_obs,
    pool,
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


async def test_pending_pods_count_as_supply(kube_server, make_controller):
    kube_server.workloads.enable()
    kube_server.workloads.set_ready_delay(3600.0)  # pods are created but never become Ready in this test
    fleet(kube_server, "pend", prefill=1, decode=1)
    kube_server.create(ias("pend", "pend"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/pend", prefill=metrics_obs(30), decode=metrics_obs(10))
    policy = QueuePolicy()
    await make_controller(policy, metrics)
    await eventually(lambda: replicas(kube_server, "pend-prefill") == 3)
    st = await eventually(lambda: (s := ias_status(kube_server, "pend"))["roles"]["prefill"]["current"] == 3 and s)
    assert st["roles"]["prefill"]["ready"] == 0 and st["roles"]["prefill"]["starting"] == 3
    # The policy saw the starting replicas as supply on later ticks, and no further scale-up was sent.
    await eventually(lambda: any(o.roles[Role.PREFILL].replicas == 3 for o in policy.seen))
    later = [o.roles[Role.PREFILL] for o in policy.seen if o.roles[Role.PREFILL].replicas == 3]
    assert all(ro.starting == 3 and ro.ready == 0 and ro.supply == 3 for ro in later)
    assert kube_server.request_count("PATCH", r"/deployments/pend-prefill/scale$") == 1


async def test_missing_pool_and_target_and_invalid_spec_affect_only_themselves(kube_server, make_controller):
    fleet(kube_server, "good")
    kube_server.create(ias("good", "good"))
    kube_server.create(ias("nopool", "does-not-exist"))
    kube_server.create(pool("orphan", "orphan"))
    kube_server.create(deployment("orphan-prefill", "orphan", "prefill", 1))  # no decode workload
    kube_server.create(ias("notarget", "orphan"))
    bad = ias("bad", "good")
    bad["spec"]["roles"]["prefill"]["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "Deployment",
                                                         "name": "good-prefill"}
    bad["spec"]["controlInterval"] = "500ms"  # passes the CRD schema, rejected by the controller (>= 1s)
    kube_server.create(bad)
    metrics = FakeMetrics()
    metrics.default = {Role.PREFILL: metrics_obs(40), Role.DECODE: metrics_obs(40)}
    await make_controller(QueuePolicy(), metrics)

    await eventually(lambda: replicas(kube_server, "good-prefill") == 4)
    c = await eventually(lambda: condition(kube_server, "nopool", "TargetsResolved"))
    assert (c["status"], c["reason"]) == ("False", "PoolNotFound")
    assert condition(kube_server, "nopool", "Ready")["status"] == "False"
    c = await eventually(lambda: condition(kube_server, "notarget", "TargetsResolved"))
    assert (c["status"], c["reason"]) == ("False", "TargetNotFound")
    assert "decode" in c["message"]
    assert replicas(kube_server, "orphan-prefill") == 1  # nothing scaled for a half-resolved fleet
    c = await eventually(lambda: condition(kube_server, "bad", "Ready"))
    assert (c["status"], c["reason"]) == ("False", "InvalidSpec")
    assert "controlInterval must be at least 1s" in c["message"]
    for name, reason in (("nopool", "PoolNotFound"), ("notarget", "TargetNotFound"), ("bad", "InvalidSpec")):
        evs = await eventually(lambda n=name: events_for(kube_server, n))
        assert any(e["reason"] == reason and e["type"] == "Warning" for e in evs), evs
    # The invalid one took no action on the workload it references (good-prefill moved only for "good").
    assert not any("bad" in e["regarding"]["name"] and e["reason"] == "LoadScaleUp"
                   for e in kube_server.list("events.k8s.io/v1", "Event", NS))
