"""Manual changes on the real control plane: someone runs ``kubectl scale`` on a target the controller manages.

The controller records one ManualChange Event naming the change and its policy, and then either leaves that role
alone (Pause) or restores its decision (Override). On the real server the Deployment controller keeps writing the
target (status, observedGeneration, conditions) around every change, so these scenarios also check that those
writes, and the controller's own scale writes reaching its cache late, are never taken for a manual change.
"""

from __future__ import annotations

import asyncio

import pytest

from autoscaler.core.types import Role
from tests.fixtures.cluster import kubectl
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


def _manual_changes(server) -> list[dict]:
    return [e for e in events_for(server, "man") if e["reason"] == "ManualChange"]


@pytest.mark.parametrize("policy", ["Pause", "Override"])
async def test_manual_change_is_recorded_and_follows_policy(kube_server, make_controller, kubeconfig_path, policy):
    fleet(kube_server, "man")
    kube_server.create(ias("man", "man", manualChangePolicy=policy, manualPause="1h"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/man", prefill=metrics_obs(40), decode=metrics_obs(20))
    controller = await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: replicas(kube_server, "man-prefill") == 4)
    await eventually(lambda: controller.reconciler.memory[f"{NS}/man"].applied.get(Role.PREFILL) == 4)
    # Let the Deployment controller and the kubelet stand-in finish their own writes to the targets (ReplicaSet,
    # Pods, status): none of them is a manual change.
    await asyncio.sleep(2.0)
    assert not _manual_changes(kube_server)

    await kubectl(kubeconfig_path, "scale", "deployment/man-prefill", "--replicas=7", "-n", NS)
    ev = await eventually(lambda: _manual_changes(kube_server))
    assert "4→7" in ev[0]["note"] and policy in ev[0]["note"], ev[0]["note"]
    if policy == "Pause":
        await asyncio.sleep(2.2)
        assert replicas(kube_server, "man-prefill") == 7
        c = condition(kube_server, "man", "ScalingLimited")
        assert (c["status"], c["reason"]) == ("True", "ManualChangePause")
        assert replicas(kube_server, "man-decode") == 2  # the other role is still managed
    else:
        await eventually(lambda: replicas(kube_server, "man-prefill") == 4)
        await asyncio.sleep(2.2)  # the restore and the Deployment controller's follow-up writes settle
        assert replicas(kube_server, "man-prefill") == 4
    assert len(_manual_changes(kube_server)) == 1, [e["note"] for e in _manual_changes(kube_server)]
