"""Controller scenarios still run on the emulated API server (tests/kubeemu): on the real control plane
(tests/test_controller.py) manual-change detection and the standby's first scale action after a failover do not yet
behave as these tests expect; see docs/testing-apiserver.md."""

from __future__ import annotations

import asyncio

import pytest

from autoscaler.core.types import Role
from tests.fixtures.controller import (
    NS,
    FakeMetrics,
    QueuePolicy,
    condition,
    events_for,
    eventually,
    fleet,
    ias,
    metrics_obs,
    replicas,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_leaked_tasks")]





def _set_replicas_by_hand(server, name: str, value: int) -> None:
    rt = server.type_for("apps/v1", "Deployment")
    obj = server.api.get(rt, NS, name)
    obj["spec"]["replicas"] = value
    server.api.update(rt, NS, name, obj)


@pytest.mark.parametrize("policy", ["Pause", "Override"])
async def test_manual_change_is_recorded_and_follows_policy(kube_server, make_controller, policy):
    fleet(kube_server, "man")
    kube_server.create(ias("man", "man", manualChangePolicy=policy, manualPause="1h"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/man", prefill=metrics_obs(40), decode=metrics_obs(20))
    controller = await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: replicas(kube_server, "man-prefill") == 4)
    await eventually(lambda: controller.reconciler.memory[f"{NS}/man"].applied.get(Role.PREFILL) == 4)
    _set_replicas_by_hand(kube_server, "man-prefill", 7)
    ev = await eventually(
        lambda: [e for e in events_for(kube_server, "man") if e["reason"] == "ManualChange"]
    )
    assert "4→7" in ev[0]["note"] and policy in ev[0]["note"]
    if policy == "Pause":
        await asyncio.sleep(2.2)
        assert replicas(kube_server, "man-prefill") == 7
        c = condition(kube_server, "man", "ScalingLimited")
        assert (c["status"], c["reason"]) == ("True", "ManualChangePause")
        assert replicas(kube_server, "man-decode") == 2  # the other role is still managed
    else:
        await eventually(lambda: replicas(kube_server, "man-prefill") == 4)
    assert len([e for e in events_for(kube_server, "man") if e["reason"] == "ManualChange"]) == 1


async def test_one_lease_two_controllers_exactly_one_actuates_and_fails_over(kube_server, make_controller):
    fleet(kube_server, "le")
    kube_server.create(ias("le", "le"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/le", prefill=metrics_obs(20), decode=metrics_obs(20))
    opts = {
        "leader_elect": True,
        "lease_namespace": NS,
        "lease_duration": 2.0,
        "renew_deadline": 1.5,
        "retry_period": 0.25,
    }
    a = await make_controller(QueuePolicy(), metrics, identity="a", **opts)
    b = await make_controller(QueuePolicy(), metrics, identity="b", **opts)
    await eventually(lambda: replicas(kube_server, "le-prefill") == 2)
    await asyncio.sleep(1.0)
    assert a.may_write() != b.may_write()
    leader, standby = (a, b) if a.may_write() else (b, a)
    assert leader.reconciler.scale_actions == 2 and standby.reconciler.scale_actions == 0
    assert standby.status.writes == 0 and standby.events.created == 0 and not standby.workers
    lease = kube_server.get("coordination.k8s.io/v1", "Lease", "inference-autoscaler", NS)
    assert lease["spec"]["holderIdentity"] == leader.settings.identity

    # The leader's process freezes: no renewals, no release. It must stop writing by itself ...
    assert leader.elector is not None and leader._elector_task is not None
    leader._elector_task.cancel()
    killed = asyncio.get_running_loop().time()
    await eventually(lambda: not leader.may_write(), within=1.6)
    # ... and the standby takes over within the lease duration (plus one retry period of polling).
    await eventually(lambda: standby.may_write(), within=4.0)
    assert asyncio.get_running_loop().time() - killed <= 2.0 + 0.25 + 0.3
    metrics.set(f"{NS}/le", prefill=metrics_obs(50), decode=metrics_obs(20))
    await eventually(lambda: replicas(kube_server, "le-prefill") == 5)
    assert standby.reconciler.scale_actions == 1
    lease = kube_server.get("coordination.k8s.io/v1", "Lease", "inference-autoscaler", NS)
    assert lease["spec"]["holderIdentity"] == standby.settings.identity
    assert lease["spec"]["leaseTransitions"] == 1

