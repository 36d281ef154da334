"""RBAC audit: the controller's ClusterRole and Role grant exactly the (verb, group, resource/subresource)
the code uses — derived from the emulated API server's request log while the real controller runs a scenario
that exercises every code path that talks to the API server (Deployment, StatefulSet and LeaderWorkerSet
targets; v1 and v1alpha2 pools; scale up and down; status; Events created and aggregated; leader election;
watch expiry and re-list), and compared with ``manifests/base/rbac.yaml`` both ways.

Discovery documents (``/apis/<group>/<version>``) are non-resource URLs every authenticated user may read
(``system:discovery``), so they are not part of the comparison.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import yaml

from autoscaler.core.types import Role
from tests.fixtures.controller import (
    NS,
    FakeMetrics,
    QueuePolicy,
    deployment,
    eventually,
    fleet,
    ias,
    metrics_obs,
    pool,
    replicas,
)

pytestmark = pytest.mark.asyncio

RBAC = Path(__file__).resolve().parents[1] / "manifests" / "base" / "rbac.yaml"
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/[^/]+)?/(?P<resource>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def used_permissions(requests) -> set[tuple[str, str, str]]:
    """(verb, group, resource[/subresource]) of every resource request in the log."""
    used: set[tuple[str, str, str]] = set()
    for r in requests:
        m = _PATH.match(r.path)
        if m is None:
            continue  # discovery, /version, ...
        group = m["group"] or ""
        if group == "" and m["resource"] == "namespaces" and m["name"] is None:
            continue
        resource = m["resource"] + (f"/{m['sub']}" if m["sub"] else "")
        if r.method == "GET":
            verb = "watch" if r.watch else ("get" if m["name"] else "list")
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[r.method]
        used.add((verb, group, resource))
    return used


def granted_permissions() -> set[tuple[str, str, str]]:
    granted: set[tuple[str, str, str]] = set()
    for doc in yaml.safe_load_all(RBAC.read_text()):
        if doc and doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            granted.add((verb, group, resource))
    return granted


async def test_clusterrole_grants_exactly_what_the_code_uses(kube_server, make_controller):
    kube_server.workloads.enable()
    # Deployments, discovered by role label, on a v1 pool.
    fleet(kube_server, "dep")
    kube_server.create(ias("dep", "dep"))
    # A StatefulSet and a LeaderWorkerSet, as explicit targets, on a v1alpha2 pool.
    kube_server.create(pool("mix", "mix", version="v1alpha2"))
    sts = deployment("mix-prefill", "mix", "prefill", 1)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "mix-prefill"
    kube_server.create(sts)
    kube_server.create(
        {
            "apiVersion": "leaderworkerset.x-k8s.io/v1",
            "kind": "LeaderWorkerSet",
            "metadata": {"name": "mix-decode", "namespace": NS},
            "spec": {
                "replicas": 1,
                "leaderWorkerTemplate": {
                    "size": 2,
                    "workerTemplate": {
                        "metadata": {"labels": {"app": "mix", "llm-d.ai/role": "decode"}},
                        "spec": {"containers": [{"name": "vllm", "image": "vllm"}]},
                    },
                },
            },
        }
    )
    mixed = ias("mix", "mix")
    mixed["spec"]["poolRef"]["group"] = "inference.networking.x-k8s.io"
    mixed["spec"]["roles"]["prefill"]["scaleTargetRef"] = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "mix-prefill",
    }
    mixed["spec"]["roles"]["decode"]["scaleTargetRef"] = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": "mix-decode",
    }
    kube_server.create(mixed)
    metrics = FakeMetrics()
    metrics.default = {Role.PREFILL: metrics_obs(30), Role.DECODE: metrics_obs(30)}
    opts = {"leader_elect": True, "lease_namespace": NS, "lease_duration": 2.0, "renew_deadline": 1.5,
            "retry_period": 0.2}
    controller = await make_controller(QueuePolicy(), metrics, **opts)
    await eventually(lambda: replicas(kube_server, "dep-prefill") == 3, within=10)
    await eventually(
        lambda: kube_server.get("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "mix-decode", NS)["spec"][
            "replicas"
        ] == 3
        and kube_server.get("apps/v1", "StatefulSet", "mix-prefill", NS)["spec"]["replicas"] == 3,
        within=10,
    )
    # Scale down too, and make the same problem Event repeat (aggregation patches the existing Event).
    metrics.default = {Role.PREFILL: metrics_obs(10), Role.DECODE: metrics_obs(10)}
    await eventually(lambda: replicas(kube_server, "dep-prefill") == 1, within=10)
    kube_server.faults.expire_next_watch(7)
    kube_server.faults.drop_watches()
    relists = controller.ias.relists
    await eventually(lambda: controller.ias.relists > relists, within=10)
    # The same scale-up again: an identical Event within 6 min is aggregated (PATCH of its series).
    metrics.default = {Role.PREFILL: metrics_obs(30), Role.DECODE: metrics_obs(30)}
    await eventually(lambda: kube_server.request_count("PATCH", r"/events/") > 0, within=10)
    await asyncio.sleep(0.5)

    used = used_permissions(kube_server.requests)
    granted = granted_permissions()
    assert used - granted == set(), f"the code uses verbs the ClusterRole does not grant: {sorted(used - granted)}"
    assert granted - used == set(), f"the ClusterRole grants verbs the code never uses: {sorted(granted - used)}"
