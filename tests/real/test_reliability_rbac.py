"""RBAC for real: the controller runs on the real kube-apiserver (``--authorization-mode=RBAC``) under its own
ServiceAccount, bound to exactly the ClusterRole and Role of ``manifests/base/rbac.yaml``.

The ServiceAccount and its namespace come from ``manifests/base`` (``serviceaccount.yaml``, ``namespace.yaml``);
its token comes from the TokenRequest API; the controller's kubeconfig carries that token and points at the
recording fault proxy. The scenario covers every code path that talks to the API server: Deployments
discovered by role label on a v1 pool; a StatefulSet and a LeaderWorkerSet as explicit targets on a v1alpha2
pool; scale through ``/scale``; status; Events (created, and a repeat aggregated into a series); the Lease.

- ``test_full_cycle_under_the_manifest_rbac``: everything happens, nothing is refused, and the request log
  (verb, group, resource) equals the grants both ways (discovery documents are non-resource URLs every
  authenticated user may read, ``system:discovery``, so they are not compared).
- ``test_each_granted_verb_is_needed[...]``: one (verb, group, resource) is removed from a copy of the parsed
  rules; the effect that verb enables does not happen, and the controller says so in a warning naming the
  refused request (and, where it has one, a condition or Event).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from autoscaler.adapters.cluster import KubeCluster
from autoscaler.adapters.kube import KubeTransport, new_api_client
from autoscaler.controller.manager import Controller
from autoscaler.core.types import Role
from autoscaler.settings import ControllerSettings
from localcluster.client import Kube, wait_until
from tests.fixtures.controller import (
    NS,
    FakeMetrics,
    QueuePolicy,
    condition,
    deployment,
    eventually,
    fleet,
    ias,
    ias_status,
    metrics_obs,
    pool,
    replicas,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_leaked_tasks")]

BASE = Path(__file__).resolve().parents[2] / "manifests" / "base"
RBAC = BASE / "rbac.yaml"
SYSTEM_NS = "inference-autoscaler-system"
SA = "inference-autoscaler"
LEASE = "inference-autoscaler"
USER = f"system:serviceaccount:{SYSTEM_NS}:{SA}"
GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{SYSTEM_NS}", "system:authenticated"]
IAS_API = "autoscaler.inference.dev/v1alpha1"
LWS_API = "leaderworkerset.x-k8s.io/v1"
HOLD_S = 4.0  # how long an absent effect must stay absent; the full cycle converges well within it (asserted)

Perm = tuple[str, str, str]  # (verb, API group, resource[/subresource])

_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/[^/]+)?/(?P<resource>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def manifest(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def granted(docs: list[dict[str, Any]]) -> set[Perm]:
    """Every (verb, group, resource) the ClusterRole and Role documents grant."""
    out: set[Perm] = set()
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc["rules"]:
                out.update((v, g, r) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"])
    return out


def used(requests: list[Any]) -> set[Perm]:
    """(verb, group, resource) of every resource request in the proxy's log."""
    out: set[Perm] = set()
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
        out.add((verb, group, resource))
    return out


def without(docs: list[dict[str, Any]], perm: Perm) -> list[dict[str, Any]]:
    """A copy of ``docs`` in which the one rule granting ``perm`` is split per (group, resource) and loses the
    verb; every other grant stays as it was."""
    verb, group, resource = perm
    out = copy.deepcopy(docs)
    for doc in out:
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        rules: list[dict[str, Any]] = []
        for rule in doc["rules"]:
            if not (verb in rule["verbs"] and group in rule["apiGroups"] and resource in rule["resources"]):
                rules.append(rule)
                continue
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    verbs = [v for v in rule["verbs"] if (v, g, r) != perm]
                    if verbs:
                        rules.append({**rule, "apiGroups": [g], "resources": [r], "verbs": verbs})
        doc["rules"] = rules
    return out


# ------------------------------------------------------------------------------------------ the cluster side


def allowed(kube: Kube, perm: Perm) -> bool:
    """The apiserver's own answer (SubjectAccessReview) for the controller's ServiceAccount."""
    verb, group, resource = perm
    res, _, sub = resource.partition("/")
    lease = res == "leases"
    attrs = {"verb": verb, "group": group, "resource": res, "subresource": sub,
             "namespace": SYSTEM_NS if lease else NS, "name": LEASE if lease and verb != "create" else ""}
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": USER, "groups": GROUPS, "resourceAttributes": attrs}}
    reply = kube.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
    return bool(reply["status"].get("allowed"))


def apply_rbac(kube: Kube, docs: list[dict[str, Any]], expect: set[Perm], every: set[Perm]) -> None:
    """Apply the RBAC documents, then wait until the authorizer allows exactly ``expect`` out of ``every``."""
    for doc in docs:
        kube.apply(doc, manager="rbac-test")
    wait_until(lambda: all(allowed(kube, p) == (p in expect) for p in every),
               what="the authorizer sees the applied rules", timeout_s=30)


def request_token(kube: Kube, seconds: int = 3600) -> str:
    """A token for the controller's ServiceAccount from the TokenRequest API."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds}}
    reply = kube.request("POST", f"/api/v1/namespaces/{SYSTEM_NS}/serviceaccounts/{SA}/token", body)
    return str(reply["status"]["token"])


@pytest.fixture(scope="module")
def sa_token(admin: Kube) -> Iterator[str]:
    """The controller's namespace and ServiceAccount from the manifests, and a token for it; the RBAC
    objects and the namespace are deleted after the module."""
    for doc in (*manifest(BASE / "namespace.yaml"), *manifest(BASE / "serviceaccount.yaml")):
        admin.apply(doc, manager="rbac-test")
    yield request_token(admin)
    for doc in manifest(RBAC):
        md = doc["metadata"]
        admin.delete(doc["apiVersion"], doc["kind"], md["name"], md.get("namespace"))
    admin.delete("v1", "Namespace", SYSTEM_NS)


# ------------------------------------------------------------------------------------------ the controller


def scenario(cluster: Any) -> None:
    """``dep``: two Deployments found by role label on a v1 pool. ``mix``: a StatefulSet and a
    LeaderWorkerSet named in ``scaleTargetRef`` on a v1alpha2 pool. Everything at 1 replica."""
    fleet(cluster, "dep")
    cluster.create(ias("dep", "dep"))
    cluster.create(pool("mix", "mix", version="v1alpha2"))
    sts = deployment("mix-prefill", "mix", "prefill", 1)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "mix-prefill"
    cluster.create(sts)
    cluster.create({
        "apiVersion": LWS_API, "kind": "LeaderWorkerSet", "metadata": {"name": "mix-decode", "namespace": NS},
        "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2, "workerTemplate": {
            "metadata": {"labels": {"app": "mix", "llm-d.ai/role": "decode"}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm"}]}}}},
    })
    mixed = ias("mix", "mix")
    mixed["spec"]["poolRef"]["group"] = "inference.networking.x-k8s.io"
    mixed["spec"]["roles"]["prefill"]["scaleTargetRef"] = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "mix-prefill"}
    mixed["spec"]["roles"]["decode"]["scaleTargetRef"] = {
        "apiVersion": LWS_API, "kind": "LeaderWorkerSet", "name": "mix-decode"}
    cluster.create(mixed)


@contextlib.asynccontextmanager
async def controller_as_sa(cluster: Any, token: str, tmp_path: Path, metrics: FakeMetrics,
                           identity: str) -> AsyncIterator[Controller]:
    """The controller, started under the ServiceAccount's token through the proxy. Its start is not
    awaited: without a list permission its caches never sync, and that must be observable, not a hang."""
    kubeconfig = cluster.plane.kubeconfig(tmp_path / "sa.kubeconfig", token=token, server=cluster.url, user=SA)
    cfg = ControllerSettings(
        kubeconfig=str(kubeconfig), leader_elect=True, lease_namespace=SYSTEM_NS, lease_name=LEASE,
        identity=identity, lease_duration=2.0, renew_deadline=1.5, retry_period=0.2, health_port=-1,
        metrics_batch_linger=0.01, shutdown_grace=2.0,
    )
    transport = KubeTransport(await new_api_client(cfg.kubeconfig), timeout_s=cfg.api_timeout)
    controller = Controller(cfg, KubeCluster(transport), QueuePolicy(), lambda spec: ("fake", metrics))
    starting = asyncio.create_task(controller.start(), name="controller start")
    try:
        yield controller
    finally:
        if not starting.done():
            starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await controller.stop()
        await controller.cluster.close()


# ------------------------------------------------------------------------------------------ what happened


TARGETS = {"dep-prefill": ("apps/v1", "Deployment"), "dep-decode": ("apps/v1", "Deployment"),
           "mix-prefill": ("apps/v1", "StatefulSet"), "mix-decode": (LWS_API, "LeaderWorkerSet")}


@dataclass
class Outcome:
    """The resulting objects on the server."""

    replicas: dict[str, int]
    status: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]
    lease: dict[str, Any] | None
    ready_pods: dict[str, int]

    def scaled(self, *names: str) -> bool:
        return all(self.replicas[n] == 3 for n in names)

    def untouched(self, *names: str) -> bool:
        return all(self.replicas[n] == 1 for n in names)

    def reason(self, name: str, ctype: str = "TargetsResolved") -> str | None:
        c = next((c for c in self.status[name].get("conditions", []) if c["type"] == ctype), None)
        return None if c is None else str(c["reason"])

    def nothing_done(self) -> bool:
        return self.untouched(*TARGETS) and not any(self.status.values()) and not self.events

    def aggregated(self) -> bool:
        return any(((e.get("series") or {}).get("count") or 0) >= 2 for e in self.events)


def outcome(cluster: Any) -> Outcome:
    kube = cluster.kube
    reps = {n: int(kube.get(av, k, n, NS)["spec"]["replicas"]) for n, (av, k) in TARGETS.items()}
    status = {n: ias_status(cluster, n) for n in ("dep", "mix")}
    events = [e for e in kube.list_objects("events.k8s.io/v1", "Event", NS)
              if e.get("reportingController") == "autoscaler.inference.dev/controller"]
    pods = kube.list_objects("v1", "Pod", NS)
    ready = {}
    for name in TARGETS:
        ready[name] = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get("workload") == name
                          and any(c["type"] == "Ready" and c["status"] == "True"
                                  for c in (p.get("status") or {}).get("conditions", [])))
    lease = kube.get_or_none("coordination.k8s.io/v1", "Lease", LEASE, SYSTEM_NS)
    return Outcome(reps, status, events, lease, ready)


def full_cycle(o: Outcome) -> bool:
    """Everything the scenario should bring about under the manifest's RBAC."""
    roles = o.status["dep"].get("roles", {})
    lease = (o.lease or {}).get("spec") or {}
    return (
        o.scaled(*TARGETS)
        and o.reason("dep") == "TargetsResolved" and o.reason("mix") == "TargetsResolved"
        and roles.get("prefill", {}).get("ready") == 3 == o.ready_pods["dep-prefill"]
        and {"LoadScaleUp"} <= {e["reason"] for e in o.events}
        and lease.get("renewTime") != lease.get("acquireTime")
    )


def not_renewed(o: Outcome) -> bool:
    spec = (o.lease or {}).get("spec") or {}
    return bool(spec) and spec.get("renewTime") == spec.get("acquireTime")


# What each verb enables, as "it did not happen" on the resulting objects. A verb that only blocks the caches
# from syncing leaves the controller not ready: nothing at all is done.
P = "inference.networking.k8s.io"
PX = "inference.networking.x-k8s.io"
LWS = "leaderworkerset.x-k8s.io"
C = "coordination.k8s.io"
EFFECTS: dict[Perm, tuple[str, Callable[[Outcome], bool]]] = {
    ("list", "autoscaler.inference.dev", "inferenceautoscalers"): ("caches never sync", Outcome.nothing_done),
    ("watch", "autoscaler.inference.dev", "inferenceautoscalers"): (
        "autoscalers created after start are never reconciled", Outcome.nothing_done),
    ("patch", "autoscaler.inference.dev", "inferenceautoscalers/status"): (
        "scaled, but no status written", lambda o: o.scaled(*TARGETS) and not any(o.status.values())),
    ("list", P, "inferencepools"): ("caches never sync", Outcome.nothing_done),
    ("watch", P, "inferencepools"): (
        "the v1 pool is never seen", lambda o: o.reason("dep") == "PoolNotFound" and o.untouched("dep-prefill",
                                                                                               "dep-decode")
        and o.scaled("mix-prefill", "mix-decode")),
    ("list", PX, "inferencepools"): ("caches never sync", Outcome.nothing_done),
    ("watch", PX, "inferencepools"): (
        "the v1alpha2 pool is never seen", lambda o: o.reason("mix") == "PoolNotFound"
        and o.untouched("mix-prefill", "mix-decode") and o.scaled("dep-prefill", "dep-decode")),
    ("list", "apps", "deployments"): ("caches never sync", Outcome.nothing_done),
    ("watch", "apps", "deployments"): (
        "the Deployments are never seen", lambda o: o.reason("dep") == "TargetNotFound"
        and o.untouched("dep-prefill", "dep-decode") and o.scaled("mix-prefill", "mix-decode")),
    ("list", "apps", "statefulsets"): ("caches never sync", Outcome.nothing_done),
    ("watch", "apps", "statefulsets"): (
        "the StatefulSet is never seen", lambda o: o.reason("mix") == "TargetNotFound"
        and o.untouched("mix-prefill", "mix-decode") and o.scaled("dep-prefill", "dep-decode")),
    ("list", LWS, "leaderworkersets"): ("caches never sync", Outcome.nothing_done),
    ("watch", LWS, "leaderworkersets"): (
        "the LeaderWorkerSet is never seen", lambda o: o.reason("mix") == "TargetNotFound"
        and o.untouched("mix-prefill", "mix-decode") and o.scaled("dep-prefill", "dep-decode")),
    ("patch", "apps", "deployments/scale"): (
        "Deployments not scaled; Ready=False/ScaleFailed", lambda o: o.untouched("dep-prefill", "dep-decode")
        and o.reason("dep", "Ready") == "ScaleFailed" and o.scaled("mix-prefill", "mix-decode")),
    ("patch", "apps", "statefulsets/scale"): (
        "StatefulSet not scaled; Ready=False/ScaleFailed", lambda o: o.untouched("mix-prefill")
        and o.reason("mix", "Ready") == "ScaleFailed" and o.scaled("mix-decode", "dep-prefill", "dep-decode")),
    ("patch", LWS, "leaderworkersets/scale"): (
        "LeaderWorkerSet not scaled; Ready=False/ScaleFailed", lambda o: o.untouched("mix-decode")
        and o.reason("mix", "Ready") == "ScaleFailed" and o.scaled("mix-prefill", "dep-prefill", "dep-decode")),
    ("list", "", "pods"): ("caches never sync", Outcome.nothing_done),
    ("watch", "", "pods"): (
        "pods that became Ready are never counted", lambda o: o.scaled(*TARGETS)
        and o.ready_pods["dep-prefill"] == 3 and o.status["dep"]["roles"]["prefill"]["ready"] == 0),
    ("create", "events.k8s.io", "events"): (
        "scaled, but no Event", lambda o: o.scaled(*TARGETS) and not o.events),
    ("patch", "events.k8s.io", "events"): (
        "a repeated Event is not aggregated into a series", lambda o: bool(o.events) and not o.aggregated()),
    ("create", C, "leases"): ("never leads", lambda o: o.lease is None and o.nothing_done()),
    ("get", C, "leases"): ("never leads", lambda o: o.lease is None and o.nothing_done()),
    ("update", C, "leases"): ("the Lease is never renewed; leadership lost", not_renewed),
}


def _names_403(text: str, perm: Perm) -> bool:
    res, _, sub = perm[2].partition("/")
    return "HTTP 403" in text and f"/{res}" in text and (not sub or f"/{sub}" in text)


def refused(logs: list[dict[str, Any]], perm: Perm) -> list[str]:
    """Warnings logged about a 403 on the resource (and subresource) of ``perm``."""
    return [f"log {e['event']!r}: {e.get('error', '')}" for e in logs
            if e.get("log_level") in ("warning", "error") and _names_403(repr(e), perm)]


def visible(logs: list[dict[str, Any]], o: Outcome, perm: Perm) -> list[str]:
    """Everywhere the refusal shows: warnings, status conditions, Events."""
    found = refused(logs, perm)
    found += [f"condition {name} {c['type']}={c['status']}/{c['reason']}" for name, st in o.status.items()
              for c in st.get("conditions", []) if _names_403(c.get("message", ""), perm)]
    found += [f"Event {e['type']}/{e['reason']}" for e in o.events if _names_403(e.get("note", ""), perm)]
    return found


async def repeat_scale_up(cluster: Any, metrics: FakeMetrics) -> None:
    """Down to 1 and up to 3 again: the second, identical scale-up Event is a repeat (a series PATCH)."""
    metrics.default = {Role.PREFILL: metrics_obs(10), Role.DECODE: metrics_obs(10)}
    with contextlib.suppress(AssertionError):
        await eventually(lambda: replicas(cluster, "dep-prefill") == 1, within=HOLD_S)
    metrics.default = {Role.PREFILL: metrics_obs(30), Role.DECODE: metrics_obs(30)}
    with contextlib.suppress(AssertionError):
        await eventually(lambda: replicas(cluster, "dep-prefill") == 3, within=HOLD_S)


# ------------------------------------------------------------------------------------------ the tests


def forbidden(cluster: Any) -> list[str]:
    """The requests the apiserver refused with 403, as the proxy recorded them."""
    return sorted({f"{r.method} {r.path}" for r in cluster.requests if r.status == 403})


async def reached(check: Callable[[], Any], what: str, cluster: Any, within: float) -> Any:
    """``eventually(check)``; on failure the message names the refused requests."""
    try:
        return await eventually(check, within=within, interval=0.3)
    except AssertionError as err:
        raise AssertionError(f"{what}: {err}; refused with 403: {forbidden(cluster)}") from None

DOCS = manifest(RBAC)
GRANTED = granted(DOCS)


@pytest.fixture
def fresh_lease(admin: Kube) -> Iterator[None]:
    """No Lease left over from another test (a held one would keep this test's controller standing by)."""
    admin.delete("coordination.k8s.io/v1", "Lease", LEASE, SYSTEM_NS)
    yield
    admin.delete("coordination.k8s.io/v1", "Lease", LEASE, SYSTEM_NS)


async def test_full_cycle_under_the_manifest_rbac(kube_server, sa_token, fresh_lease, tmp_path):
    await asyncio.to_thread(apply_rbac, kube_server.kube, DOCS, GRANTED, GRANTED)
    metrics = FakeMetrics()
    metrics.default = {Role.PREFILL: metrics_obs(30), Role.DECODE: metrics_obs(30)}
    identity = f"rbac-{uuid.uuid4().hex[:6]}"
    async with controller_as_sa(kube_server, sa_token, tmp_path, metrics, identity) as c:
        await eventually(lambda: c.ready.is_set() and c.may_write(), within=10)
        started = time.monotonic()
        scenario(kube_server)
        await reached(lambda: full_cycle(outcome(kube_server)), "the full cycle", kube_server, 20)
        converged_s = time.monotonic() - started
        await repeat_scale_up(kube_server, metrics)
        final = await reached(lambda: (o := outcome(kube_server)).aggregated() and o, "a repeated Event aggregated",
                              kube_server, 10)
    assert converged_s < HOLD_S, f"the full cycle took {converged_s:.1f} s; HOLD_S must exceed it"
    # Every "did not happen" below is false here: each one tells a missing verb from the full cycle.
    assert not [what for what, happened_without in EFFECTS.values() if happened_without(final)]
    assert final.lease is not None and final.lease["spec"]["holderIdentity"] == identity
    assert all(e["reportingInstance"] == identity for e in final.events)
    assert {c["type"]: c["status"] for c in final.status["mix"]["conditions"]}["Ready"] == "True"
    assert condition(kube_server, "dep", "Ready")["status"] == "True"
    assert not forbidden(kube_server), forbidden(kube_server)
    seen = used(kube_server.requests)
    assert seen - GRANTED == set(), f"the code uses verbs the manifest does not grant: {sorted(seen - GRANTED)}"
    assert GRANTED - seen == set(), f"the manifest grants verbs the code never uses: {sorted(GRANTED - seen)}"


async def test_every_granted_verb_has_an_expected_effect():
    """The table below covers exactly the manifest's grants (a new rule needs a row)."""
    assert set(EFFECTS) == GRANTED


@pytest.mark.parametrize("perm", sorted(EFFECTS), ids=lambda p: f"{p[0]}-{p[2]}-{p[1] or 'core'}")
async def test_each_granted_verb_is_needed(kube_server, sa_token, fresh_lease, tmp_path, perm):
    what, happened_without = EFFECTS[perm]
    await asyncio.to_thread(apply_rbac, kube_server.kube, without(DOCS, perm), GRANTED - {perm}, GRANTED)
    metrics = FakeMetrics()
    metrics.default = {Role.PREFILL: metrics_obs(30), Role.DECODE: metrics_obs(30)}
    with capture_logs() as logs:
        async with controller_as_sa(kube_server, sa_token, tmp_path, metrics, f"rbac-{uuid.uuid4().hex[:6]}") as c:
            # Objects are created once the caches are synced (or visibly cannot be), so watches matter.
            await eventually(lambda: (c.ready.is_set() and c.may_write()) or refused(logs, perm), within=10)
            scenario(kube_server)
            if perm == ("patch", "events.k8s.io", "events"):
                await eventually(lambda: outcome(kube_server).events, within=HOLD_S, interval=0.3)
                await repeat_scale_up(kube_server, metrics)
            await eventually(lambda: happened_without(outcome(kube_server)), within=15, interval=0.3)
            await asyncio.sleep(HOLD_S)
            final = outcome(kube_server)
            shown = visible(logs, final, perm)
    assert happened_without(final), (what, final)
    assert shown, f"the refusal is not visible: {[e for e in logs if e.get('log_level') != 'debug']}"
