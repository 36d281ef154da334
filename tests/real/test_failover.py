"""Leader election in one process on the real control plane: two controllers on one Lease, exactly one
actuates; when the leader stops renewing, it stops writing by itself and the standby takes over and scales."""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures.controller import (
    NS,
    FakeMetrics,
    QueuePolicy,
    eventually,
    fleet,
    ias,
    metrics_obs,
    replicas,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_leaked_tasks")]


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
    # The apiserver has applied the patch; its answer reaches the controller through the proxy a moment later.
    await eventually(lambda: standby.reconciler.scale_actions == 1)
    await asyncio.sleep(1.5)  # more ticks: nothing is scaled twice, and the old leader stays silent
    assert standby.reconciler.scale_actions == 1 and leader.reconciler.scale_actions == 2
    assert kube_server.request_count("PATCH", r"/deployments/le-prefill/scale$") == 2
    lease = kube_server.get("coordination.k8s.io/v1", "Lease", "inference-autoscaler", NS)
    assert lease["spec"]["holderIdentity"] == standby.settings.identity
    assert lease["spec"]["leaseTransitions"] == 1

