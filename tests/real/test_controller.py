"""Scenario tests of the controller against the local control plane (real kube-apiserver, etcd and
kube-controller-manager; the controller talks to it through the recording fault proxy)."""

from __future__ import annotations

import asyncio
import copy

import pytest

from autoscaler.core.types import Role
from localcluster.client import Kube, KubeError, wait_until
from localcluster.crds import PROJECT_CRD, crd_documents, install_crds
from tests.fixtures.cluster import kubectl
from tests.fixtures.controller import (
    NS,
    FakeMetrics,
    QueuePolicy,
    condition,
    deployment,
    events_for,
    eventually,
    fleet,
    ias,
    ias_status,
    metrics_obs,
    pool,
    replicas,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_leaked_tasks")]




async def test_scales_up_and_down_through_scale(kube_server, make_controller):
    fleet(kube_server, "llama", prefill=1, decode=1)
    kube_server.create(ias("llama", "llama"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/llama", prefill=metrics_obs(35), decode=metrics_obs(52))
    await make_controller(QueuePolicy(), metrics)

    await eventually(
        lambda: replicas(kube_server, "llama-prefill") == 4 and replicas(kube_server, "llama-decode") == 6
    )
    assert kube_server.request_count("PATCH", r"/deployments/llama-prefill/scale$") == 1
    st = await eventually(
        lambda: (
            ias_status(kube_server, "llama").get("roles", {}).get("decode", {}).get("current") == 6
            and ias_status(kube_server, "llama")
        )
    )
    assert st["roles"]["prefill"]["desired"] == 4
    assert st["roles"]["prefill"]["target"] == "Deployment/llama-prefill"
    assert st["summary"]["prefill"] == "4→4" and st["summary"]["decode"] == "6→6"
    assert condition(kube_server, "llama", "Ready")["status"] == "True"
    assert condition(kube_server, "llama", "TargetsResolved")["status"] == "True"
    reasons = {e["reason"] for e in events_for(kube_server, "llama")}
    assert "LoadScaleUp" in reasons

    metrics.set(f"{NS}/llama", prefill=metrics_obs(5), decode=metrics_obs(12))
    await eventually(
        lambda: replicas(kube_server, "llama-prefill") == 1 and replicas(kube_server, "llama-decode") == 2
    )
    assert "ScaleDown" in {e["reason"] for e in events_for(kube_server, "llama")}


async def test_pool_query_carries_the_specs_metrics_settings(kube_server, make_controller):
    fleet(kube_server, "llama", prefill=1, decode=1)
    obj = ias("llama", "llama")
    obj["spec"].setdefault("metrics", {}).update({"window": "90s", "staleness": "45s"})
    kube_server.create(obj)
    metrics = FakeMetrics()
    metrics.set(f"{NS}/llama", prefill=metrics_obs(1), decode=metrics_obs(1))
    await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: bool(metrics.queries))
    q = metrics.queries[0]
    assert (q.window_s, q.staleness_s) == (90.0, 45.0)
    assert set(q.pods_by_role) == {Role.PREFILL, Role.DECODE}


async def test_scale_up_before_scale_down(kube_server, make_controller):
    fleet(kube_server, "mix", prefill=5, decode=1)
    kube_server.create(ias("mix", "mix"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/mix", prefill=metrics_obs(10), decode=metrics_obs(40))
    await make_controller(QueuePolicy(), metrics)
    await eventually(
        lambda: replicas(kube_server, "mix-decode") == 4 and replicas(kube_server, "mix-prefill") == 1
    )
    patches = [r.path for r in kube_server.requests if r.method == "PATCH" and r.path.endswith("/scale")]
    assert patches[:2] == [
        f"/apis/apps/v1/namespaces/{NS}/deployments/mix-decode/scale",
        f"/apis/apps/v1/namespaces/{NS}/deployments/mix-prefill/scale",
    ]


async def test_pending_pods_count_as_supply(kube_server, make_controller):
    kube_server.kubelet.set_ready_after(3600.0)  # pods are created but never become Ready in this test
    fleet(kube_server, "pend", prefill=1, decode=1)
    kube_server.create(ias("pend", "pend"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/pend", prefill=metrics_obs(30), decode=metrics_obs(10))
    policy = QueuePolicy()
    await make_controller(policy, metrics)
    await eventually(lambda: replicas(kube_server, "pend-prefill") == 3)
    st = await eventually(
        lambda: (s := ias_status(kube_server, "pend"))["roles"]["prefill"]["current"] == 3 and s
    )
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
    bad["spec"]["roles"]["prefill"]["scaleTargetRef"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "good-prefill",
    }
    bad["spec"]["controlInterval"] = "500ms"  # the controller needs >= 1s (so does the current CRD)
    _create_under_an_older_crd(kube_server, bad)
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
    assert not any(
        "bad" in e["regarding"]["name"] and e["reason"] == "LoadScaleUp"
        for e in kube_server.list_objects("events.k8s.io/v1", "Event", NS)
    )


def _create_under_an_older_crd(server, obj) -> None:
    """Store ``obj`` as a cluster whose CRD predates the spec-level rule (controlInterval >= 1s) did: the
    server does not revalidate stored objects when a CRD changes. The session's CRD is put back at once."""
    (current,) = crd_documents((PROJECT_CRD,))
    older = copy.deepcopy(current)
    del older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    install_crds(server.kube, [older])
    try:
        wait_until(lambda: _accepted(server.kube, obj), what="the older CRD served", timeout_s=30)
        server.create(obj)
    finally:
        install_crds(server.kube, [current])
        wait_until(lambda: not _accepted(server.kube, obj), what="the current CRD served", timeout_s=30)


def _accepted(kube: Kube, obj) -> bool:
    probe = {**obj, "metadata": {**obj["metadata"], "name": "probe"}}
    try:
        kube.create(probe, dry_run=True)
    except KubeError as err:
        if err.status != 422:
            raise
        return False
    return True


async def test_conflict_storm_is_retried(kube_server, make_controller):
    fleet(kube_server, "cf")
    kube_server.create(ias("cf", "cf"))
    kube_server.faults.conflict_storm(7, path=r"/scale$")
    metrics = FakeMetrics()
    metrics.set(f"{NS}/cf", prefill=metrics_obs(20), decode=metrics_obs(30))
    await make_controller(QueuePolicy(), metrics)
    await eventually(
        lambda: replicas(kube_server, "cf-prefill") == 2 and replicas(kube_server, "cf-decode") == 3
    )

    def counts() -> tuple[int, int]:
        conflicted = [r for r in kube_server.requests if r.path.endswith("/scale") and r.status == 409]
        ok = [r for r in kube_server.requests if r.method == "PATCH" and r.path.endswith("/scale") and r.status == 200]
        return len(conflicted), len(ok)

    # The proxy records a request's status once the answer has been relayed, a moment after the apiserver
    # applied it (which is what the wait above sees), so wait for the record rather than read it at once.
    await eventually(lambda: counts()[1] >= 2)
    await asyncio.sleep(0.3)
    assert counts() == (7, 2)


async def test_watch_expiry_relists_and_keeps_working(kube_server, make_controller):
    fleet(kube_server, "w1")
    kube_server.create(ias("w1", "w1"))
    metrics = FakeMetrics()
    metrics.default = {Role.PREFILL: metrics_obs(20), Role.DECODE: metrics_obs(20)}
    controller = await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: replicas(kube_server, "w1-prefill") == 2)
    lists_before = controller.ias.relists
    kube_server.faults.expire_next_watch(7)  # every informer's next watch gets 410 Expired
    kube_server.faults.drop_watches()
    fleet(kube_server, "w2")
    kube_server.create(ias("w2", "w2"))
    await eventually(
        lambda: replicas(kube_server, "w2-prefill") == 2 and replicas(kube_server, "w2-decode") == 2
    )
    assert controller.ias.relists > lists_before


async def test_status_written_only_when_it_changes(kube_server, make_controller):
    fleet(kube_server, "st")
    kube_server.create(ias("st", "st"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/st", prefill=metrics_obs(20), decode=metrics_obs(20))
    controller = await make_controller(QueuePolicy(), metrics)
    await eventually(
        lambda: ias_status(kube_server, "st").get("roles", {}).get("decode", {}).get("current") == 2
    )
    await asyncio.sleep(1.2)  # let the converging writes settle
    writes = kube_server.request_count("PATCH", r"/inferenceautoscalers/st/status$")
    reconciles = controller.stats.reconciles
    await asyncio.sleep(2.5)  # ≥ 2 more ticks at 1 s with identical metrics
    assert controller.stats.reconciles >= reconciles + 2
    assert kube_server.request_count("PATCH", r"/inferenceautoscalers/st/status$") == writes
    metrics.set(f"{NS}/st", prefill=metrics_obs(20, ttft=0.9), decode=metrics_obs(20))
    await eventually(lambda: ias_status(kube_server, "st")["observed"]["ttftSeconds"] == 0.9)
    assert kube_server.request_count("PATCH", r"/inferenceautoscalers/st/status$") == writes + 1


async def test_restart_mid_scale_resumes_without_duplicate_action(kube_server, make_controller):
    kube_server.kubelet.set_ready_after(3600.0)
    fleet(kube_server, "rs")
    kube_server.create(ias("rs", "rs"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/rs", prefill=metrics_obs(50), decode=metrics_obs(10))
    # The first instance scales, then dies before it can record status (status writes fail).
    kube_server.faults.fail_fraction(1.0, status=503, path=r"/status$")
    first = await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: replicas(kube_server, "rs-prefill") == 5)
    await first.stop()
    assert "roles" not in ias_status(kube_server, "rs")
    kube_server.faults.clear()
    second = await make_controller(QueuePolicy(), metrics)
    await eventually(
        lambda: ias_status(kube_server, "rs").get("roles", {}).get("prefill", {}).get("current") == 5
    )
    await asyncio.sleep(1.5)
    assert kube_server.request_count("PATCH", r"/deployments/rs-prefill/scale$") == 1
    assert second.reconciler.scale_actions == 0
    assert not [e for e in events_for(kube_server, "rs") if e["reason"] == "ManualChange"]
    assert ias_status(kube_server, "rs")["roles"]["prefill"]["starting"] == 5


async def test_graceful_stop_releases_the_lease(kube_server, make_controller):
    fleet(kube_server, "rel")
    kube_server.create(ias("rel", "rel"))
    metrics = FakeMetrics()
    opts = {
        "leader_elect": True,
        "lease_namespace": NS,
        "lease_duration": 30.0,
        "renew_deadline": 20.0,
        "retry_period": 0.25,
    }
    a = await make_controller(QueuePolicy(), metrics, identity="a", **opts)
    await eventually(lambda: a.may_write())
    b = await make_controller(QueuePolicy(), metrics, identity="b", **opts)
    await a.stop()
    assert not a.may_write()
    # Released: the standby takes over at once instead of waiting out the 30 s lease.
    await eventually(lambda: b.may_write(), within=2.0)


async def test_kubectl_get_and_describe_show_columns_and_events(
    kube_server, make_controller, kubeconfig_path
):
    fleet(kube_server, "kc")
    kube_server.create(ias("kc", "kc"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/kc", prefill=metrics_obs(30, ttft=0.62), decode=metrics_obs(50, kv=0.71))
    await make_controller(QueuePolicy(), metrics)
    await eventually(
        lambda: ias_status(kube_server, "kc").get("roles", {}).get("decode", {}).get("current") == 5
    )
    out = await kubectl(kubeconfig_path, "get", "ias", "-n", NS)
    header, row = out.splitlines()[:2]
    for column in ("NAME", "POOL", "PREFILL", "DECODE", "TTFT", "QUEUE", "KV", "$/H", "READY", "AGE"):
        assert column in header.split(), header
    cells = row.split()
    assert cells[:4] == ["kc", "kc", "3→3", "5→5"], row
    assert "620ms/1s" in cells and "80" in cells and "71%" in cells and "True" in cells
    assert "64.00" in cells  # (3 + 5) replicas × 2 GPUs × 4.00 per GPU-hour
    wide = await kubectl(kubeconfig_path, "get", "ias", "kc", "-n", NS, "-o", "wide")
    # The reason column shows the latest decision: the scale-up, or the steady hold that follows it.
    assert "REASON" in wide.splitlines()[0]
    assert wide.splitlines()[1].split()[-2] in {"LoadScaleUp", "Steady"}, wide


async def test_kubectl_describe_shows_events(kube_server, make_controller, kubeconfig_path):
    fleet(kube_server, "kc")
    kube_server.create(ias("kc", "kc"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/kc", prefill=metrics_obs(30), decode=metrics_obs(50))
    await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: [e for e in events_for(kube_server, "kc") if e["reason"] == "LoadScaleUp"])
    described = await kubectl(kubeconfig_path, "describe", "ias", "kc", "-n", NS)
    assert "Events:" in described
    assert "LoadScaleUp" in described and "prefill Deployment/kc-prefill: 1→3" in described
