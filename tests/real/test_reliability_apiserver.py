"""Reliability matrix, API-server rows not already covered by ``tests/test_controller.py``: 500s and
timeouts, slow writes, Lease lost mid-tick, target Deployment deleted and recreated, InferencePool deleted,
the CRD upgraded with a new field. (409 storms, watch 410/drop, manual edits, a second instance and restart
mid-scale are in ``tests/test_controller.py``; ``docs/reliability.md`` maps each fault to its test.)"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Iterator

import pytest

from autoscaler.core.types import Role
from localcluster.client import Kube
from tests.fixtures.controller import (
    NS,
    FakeMetrics,
    QueuePolicy,
    condition,
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

IAS_API = "autoscaler.inference.dev/v1alpha1"
CRD_API = "apiextensions.k8s.io/v1"
CRD_NAME = "inferenceautoscalers.autoscaler.inference.dev"
WRITES = ("PATCH", "PUT", "POST", "DELETE")




def scale_patches(server, name: str, status: int | None = 200) -> int:
    return sum(
        1
        for r in server.requests
        if r.method == "PATCH" and r.path.endswith(f"/deployments/{name}/scale") and r.status == status
    )


async def test_500s_and_timeouts_are_retried_without_duplicate_action(kube_server, make_controller):
    fleet(kube_server, "flaky")
    kube_server.create(ias("flaky", "flaky"))
    # Every /scale write fails 6 times with 500; status writes take longer than the API timeout.
    kube_server.faults.fail_next(6, status=500, path=r"/scale$")
    kube_server.faults.add_latency(1.0, method="PATCH", path=r"/status$")
    metrics = FakeMetrics()
    metrics.set(f"{NS}/flaky", prefill=metrics_obs(30), decode=metrics_obs(20))
    controller = await make_controller(QueuePolicy(), metrics, api_timeout=0.4)
    await eventually(
        lambda: replicas(kube_server, "flaky-prefill") == 3 and replicas(kube_server, "flaky-decode") == 2,
        within=15,
    )
    await eventually(lambda: controller.stats.errors >= 1)  # the timeouts reached the worker's backoff
    assert "roles" not in ias_status(kube_server, "flaky")  # no status write got through yet
    kube_server.faults.clear()
    st = await eventually(
        lambda: (s := ias_status(kube_server, "flaky")).get("roles", {}).get("prefill", {}).get("current") == 3
        and s,
        within=15,
    )
    assert st["roles"]["decode"]["current"] == 2
    assert condition(kube_server, "flaky", "Ready")["status"] == "True"
    # Exactly one successful patch per role: retries never doubled an action.
    assert scale_patches(kube_server, "flaky-prefill") == 1 and scale_patches(kube_server, "flaky-decode") == 1
    scale_events = [e for e in events_for(kube_server, "flaky") if e["reason"] == "LoadScaleUp"]
    assert len(scale_events) == 2


async def test_slow_writes_converge_once(kube_server, make_controller):
    fleet(kube_server, "slow")
    kube_server.create(ias("slow", "slow"))
    kube_server.faults.add_latency(0.6, method="PATCH")
    kube_server.faults.add_latency(0.6, method="POST")
    metrics = FakeMetrics()
    metrics.set(f"{NS}/slow", prefill=metrics_obs(40), decode=metrics_obs(10))
    await make_controller(QueuePolicy(), metrics, api_timeout=3.0)
    await eventually(
        lambda: ias_status(kube_server, "slow").get("roles", {}).get("prefill", {}).get("current") == 4,
        within=15,
    )
    assert replicas(kube_server, "slow-prefill") == 4 and replicas(kube_server, "slow-decode") == 1
    await asyncio.sleep(1.5)  # ticks overlap slow writes: still one patch, no ManualChange
    assert scale_patches(kube_server, "slow-prefill") == 1
    assert not [e for e in events_for(kube_server, "slow") if e["reason"] == "ManualChange"]


async def test_lease_lost_mid_tick_means_no_write_after_loss(kube_server, make_controller):
    fleet(kube_server, "ls")
    kube_server.create(ias("ls", "ls"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/ls", prefill=metrics_obs(20), decode=metrics_obs(20))
    opts = {
        "leader_elect": True,
        "lease_namespace": NS,
        "lease_duration": 1.5,
        "renew_deadline": 1.0,
        "retry_period": 0.2,
        "identity": "a",
    }
    leader = await make_controller(QueuePolicy(), metrics, **opts)
    await eventually(lambda: replicas(kube_server, "ls-prefill") == 2)
    # Every tick now has work (metrics change) and every write is slow, so the loss lands mid-tick.
    kube_server.faults.add_latency(0.3, method="PATCH")
    for q in range(3, 9):
        metrics.set(f"{NS}/ls", prefill=metrics_obs(q * 10, ttft=0.1 * q), decode=metrics_obs(20))
        await asyncio.sleep(0.25)
    # The API server starts refusing the Lease renewals: leadership is lost within renew_deadline.
    kube_server.faults.fail_fraction(1.0, status=500, path=r"/leases")
    metrics.set(f"{NS}/ls", prefill=metrics_obs(80, ttft=0.95), decode=metrics_obs(70))
    await eventually(lambda: not leader.may_write(), within=3, interval=0.005)
    lost_at = time.monotonic()  # within 5 ms of the gate closing (the proxy records monotonic receipt times)
    await asyncio.sleep(1.5)  # the leader keeps running, its workers cancelled; it must stay silent
    late = [
        r
        for r in kube_server.requests
        if r.method in WRITES and "/leases" not in r.path and r.started > lost_at + 0.05
    ]
    assert not late, [(r.method, r.path, r.started - lost_at) for r in late]
    assert not leader.workers
    # When the Lease can be renewed again, it re-acquires and catches up (8 queued → 8 replicas).
    kube_server.faults.clear()
    await eventually(lambda: leader.may_write(), within=5)
    await eventually(lambda: replicas(kube_server, "ls-prefill") == 8, within=5)


async def test_target_deleted_and_recreated_and_pool_deleted(kube_server, make_controller):
    fleet(kube_server, "dr")
    kube_server.create(ias("dr", "dr"))
    fleet(kube_server, "other")
    kube_server.create(ias("other", "other"))
    metrics = FakeMetrics()
    metrics.default = {Role.PREFILL: metrics_obs(30), Role.DECODE: metrics_obs(20)}
    await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: replicas(kube_server, "dr-prefill") == 3)
    saved = copy.deepcopy(kube_server.get("apps/v1", "Deployment", "dr-prefill", NS))

    # 1. The prefill Deployment is deleted: TargetNotFound, Warning Event, nothing else touched.
    kube_server.kube.delete("apps/v1", "Deployment", "dr-prefill", NS)
    c = await eventually(
        lambda: (c := condition(kube_server, "dr", "TargetsResolved")) and c["status"] == "False" and c
    )
    assert c["reason"] == "TargetNotFound" and "prefill" in c["message"]
    assert condition(kube_server, "dr", "Ready")["status"] == "False"
    await eventually(lambda: [e for e in events_for(kube_server, "dr") if e["reason"] == "TargetNotFound"])
    decode_patches = scale_patches(kube_server, "dr-decode")
    # 2. Recreated with 1 replica: resolved again and managed at once (a new object is not a manual change).
    fresh = {k: saved[k] for k in ("apiVersion", "kind", "spec")}
    fresh["metadata"] = {"name": "dr-prefill", "namespace": NS}
    fresh["spec"]["replicas"] = 1
    kube_server.create(fresh)
    await eventually(lambda: replicas(kube_server, "dr-prefill") == 3, within=5)
    await eventually(lambda: condition(kube_server, "dr", "TargetsResolved")["status"] == "True")
    assert not [e for e in events_for(kube_server, "dr") if e["reason"] == "ManualChange"]
    assert scale_patches(kube_server, "dr-decode") == decode_patches

    # 3. The InferencePool is deleted: PoolNotFound, no action; the other autoscaler is unaffected.
    kube_server.kube.delete("inference.networking.k8s.io/v1", "InferencePool", "dr", NS)
    c = await eventually(
        lambda: (c := condition(kube_server, "dr", "TargetsResolved")) and c["reason"] == "PoolNotFound" and c
    )
    assert c["status"] == "False"
    metrics.set(f"{NS}/dr", prefill=metrics_obs(70), decode=metrics_obs(70))
    metrics.set(f"{NS}/other", prefill=metrics_obs(50), decode=metrics_obs(20))
    await eventually(lambda: replicas(kube_server, "other-prefill") == 5)
    assert replicas(kube_server, "dr-prefill") == 3 and replicas(kube_server, "dr-decode") == 2
    st = ias_status(kube_server, "dr")
    assert st["roles"]["prefill"]["current"] == 3  # last known figures are kept while unresolved
    kube_server.create(pool("dr", "dr"))
    await eventually(lambda: replicas(kube_server, "dr-prefill") == 7, within=5)


async def test_crd_upgraded_with_a_new_field(kube_server, make_controller):
    """A newer CRD adds ``spec.newField``; objects that set it keep being managed by this controller
    (unknown fields are ignored, as Kubernetes clients do, and named in a Warning Event once the controller's
    watch delivers them)."""
    fleet(kube_server, "up")
    kube_server.create(ias("up", "up"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/up", prefill=metrics_obs(20), decode=metrics_obs(20))
    await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: replicas(kube_server, "up-prefill") == 2)

    with _crd_with_new_field(kube_server.kube):
        # The apiserver serves the new schema a moment after the CRD update; until then the field is pruned.
        def stored_with_new_field() -> bool:
            patched = kube_server.kube.patch(IAS_API, "InferenceAutoscaler", "up", NS,
                                             {"spec": {"newField": "something new"}})
            return patched["spec"].get("newField") == "something new"

        await eventually(stored_with_new_field, interval=0.2)
        # A watch opened before the CRD changed is served by the old schema's storage, which prunes the new
        # field from every event, until the apiserver tears that storage down (2 x --request-timeout = 120 s
        # later, apiextensions-apiserver crdHandler.tearDown). End the watches now instead of waiting.
        kube_server.faults.drop_watches()
        metrics.set(f"{NS}/up", prefill=metrics_obs(60), decode=metrics_obs(20))
        await eventually(lambda: replicas(kube_server, "up-prefill") == 6)
        assert condition(kube_server, "up", "Ready")["status"] == "True"
        ev = await eventually(lambda: [e for e in events_for(kube_server, "up") if e["reason"] == "UnknownFields"])
        assert ev[0]["type"] == "Warning" and "spec.newField" in ev[0]["note"]


@contextlib.contextmanager
def _crd_with_new_field(kube: Kube) -> Iterator[None]:
    """The project's CRD with ``spec.newField`` in every version, restored afterwards (the plane is shared)."""
    crd = kube.get(CRD_API, "CustomResourceDefinition", CRD_NAME)
    saved = copy.deepcopy(crd["spec"])
    for version in crd["spec"]["versions"]:
        spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        spec_schema["properties"]["newField"] = {"type": "string", "description": "added in a later version"}
    kube.update(crd)
    try:
        yield
    finally:
        current = kube.get(CRD_API, "CustomResourceDefinition", CRD_NAME)
        current["spec"] = saved
        kube.update(current)
