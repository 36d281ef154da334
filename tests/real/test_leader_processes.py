"""Leader election between two real ``inference-autoscaler run`` processes on one Lease of the real apiserver.

Exactly one actuates. The leader is frozen (SIGSTOP) until its Lease expires: the other takes over and keeps the
fleet right. The old leader is thawed (SIGCONT): it notices it lost the Lease and writes nothing. The new leader
stops gracefully, the old one takes over again and scales from what the cluster shows, not from what it
remembered from before its freeze.

Every change of the targets' ``spec.replicas`` is recorded by a watch of the admin on the apiserver, and every
request each process sends by its own fault proxy: together they show that no write was made twice, none was
lost, and who made each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from localcluster.procs import free_port
from tests.fixtures.controller import NS, eventually, fleet, ias, replicas
from tests.real.runproc import RunProcess, run_process

__all__ = ["run_process"]

pytestmark = pytest.mark.asyncio

LEASE_S, RENEW_S, RETRY_S = 6.0, 4.0, 0.5
TARGETS = ("le-prefill", "le-decode")


def _flags(identity: str) -> tuple[str, ...]:
    return (
        "--leader-elect", "--lease-namespace", NS, "--identity", identity, "--lease-duration", f"{LEASE_S:g}",
        "--renew-deadline", f"{RENEW_S:g}", "--retry-period", f"{RETRY_S:g}", "--shutdown-grace", "5",
    )  # fmt: skip


class ReplicaHistory:
    """Every value ``spec.replicas`` of the Deployments in ``NS`` took, in order, from a list then a watch."""

    def __init__(self, plane: Any) -> None:
        self.plane = plane
        self.values: dict[str, list[int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ssl = ssl.create_default_context(cafile=str(plane.ca.path))
        self._headers = {"Authorization": f"Bearer {plane.admin_token}"}

    def _see(self, obj: dict[str, Any]) -> None:
        name, value = obj["metadata"]["name"], int(obj["spec"]["replicas"])
        seen = self.values.setdefault(name, [])
        if not seen or seen[-1] != value:
            seen.append(value)

    async def start(self) -> None:
        base = f"{self.plane.url}/apis/apps/v1/namespaces/{NS}/deployments"
        session = aiohttp.ClientSession(headers=self._headers, timeout=aiohttp.ClientTimeout(total=None))
        async with session.get(base, ssl=self._ssl) as r:
            listed = await r.json()
        for item in listed["items"]:
            self._see(item)
        rv = listed["metadata"]["resourceVersion"]
        self._task = asyncio.create_task(self._watch(session, f"{base}?watch=1&resourceVersion={rv}"))

    async def _watch(self, session: aiohttp.ClientSession, url: str) -> None:
        try:
            async with session.get(url, ssl=self._ssl) as r:
                async for line in r.content:
                    event = json.loads(line)
                    assert event["type"] in ("ADDED", "MODIFIED", "DELETED"), event
                    self._see(event["object"])
        finally:
            await session.close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@pytest_asyncio.fixture
async def history(kube_server: Any) -> AsyncIterator[ReplicaHistory]:
    fleet(kube_server, "le", prefill=1, decode=1)
    h = ReplicaHistory(kube_server.plane)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


def _holder(kube_server: Any) -> str:
    lease = kube_server.kube.get_or_none("coordination.k8s.io/v1", "Lease", "inference-autoscaler", NS)
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def _set_min(kube_server: Any, value: int) -> None:
    roles = {role: {"minReplicas": value} for role in ("prefill", "decode")}
    kube_server.kube.patch("autoscaler.inference.dev/v1alpha1", "InferenceAutoscaler", "le", NS,
                           {"spec": {"roles": roles}})


def _scale_patches(rp: RunProcess, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
    """Successful ``/scale`` PATCHes this process sent in ``[since, until)``, per Deployment."""
    out = dict.fromkeys(TARGETS, 0)
    for r in rp.proxy.requests:
        if r.method == "PATCH" and r.path.endswith("/scale") and r.status == 200 and since <= r.started < until:
            out[r.path.split("/")[-2]] += 1
    return out


async def _role(rp: RunProcess, want: str, within: float) -> None:
    deadline = time.monotonic() + within
    while (got := await rp.role()) != want:
        assert time.monotonic() < deadline, f"{rp.name} is {got or 'not answering'}, not {want}, after {within} s"
        await asyncio.sleep(0.1)


async def _all_at(kube_server: Any, value: int, within: float = 20.0) -> None:
    await eventually(lambda: all(replicas(kube_server, t) == value for t in TARGETS), within=within)


async def test_two_processes_one_lease_freeze_failover_thaw(kube_server, history, run_process, record_property):
    # No Prometheus at this URL: the policy holds, and the spec's minReplicas drives every scale-up.
    dead = f"http://127.0.0.1:{free_port()}"
    obj = ias("le", "le", metrics={"prometheus": {"url": dead, "timeout": "1s"}})
    for role in obj["spec"]["roles"].values():
        role["minReplicas"] = 2
    kube_server.create(obj)

    # 1. Exactly one actuates.
    a = await run_process("a", *_flags("a"))
    await eventually(lambda: _holder(kube_server) == "a", within=20)
    b = await run_process("b", *_flags("b"))
    await _all_at(kube_server, 2)
    await asyncio.sleep(2.0)
    assert (await a.role(), await b.role()) == ("leader", "standby")
    assert b.writes() == [], "the standby wrote"
    assert _scale_patches(a) == {"le-prefill": 1, "le-decode": 1}

    # 2. Freeze the leader: no renewals, no release. The standby takes over once the Lease expires.
    a.proc.signal(signal.SIGSTOP)
    frozen = time.monotonic()
    await eventually(lambda: _holder(kube_server) == "b", within=LEASE_S + 10)
    takeover_s = time.monotonic() - frozen
    record_property("takeover_s", round(takeover_s, 2))
    assert takeover_s >= RENEW_S, f"taken over after {takeover_s:.1f} s, before the old leader's deadline"
    assert takeover_s <= LEASE_S + RETRY_S + 3.0, f"taken over only after {takeover_s:.1f} s"
    assert await b.role() == "leader"
    _set_min(kube_server, 3)
    await _all_at(kube_server, 3)

    # 3. Thaw the old leader: it must notice it lost the Lease and write nothing at all.
    thawed = time.monotonic()
    a.proc.signal(signal.SIGCONT)
    await _role(a, "standby", within=10)
    for _ in range(int(3 / 0.25)):  # a few control intervals and retry periods
        assert await a.role() == "standby"
        await asyncio.sleep(0.25)
    # Frozen between reading the Lease and renewing it, it may send that renewal on waking; the apiserver refuses
    # it (409: the Lease changed since). Nothing else may leave the process.
    stale_renewal = ("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/inference-autoscaler", 409)
    late = [w for w in a.writes(since=thawed) if w != stale_renewal]
    assert late == [], f"the old leader wrote after it lost the Lease: {late}"
    assert _holder(kube_server) == "b"
    assert all(replicas(kube_server, t) == 3 for t in TARGETS)

    # 4. The new leader stops gracefully (releases the Lease); the old one takes over and scales from the cluster
    # as it is now (3), not from the 2 it remembers writing: no manual change is imagined, nothing is paused.
    handed_over = time.monotonic()
    assert await b.stop() == 0, b.proc.tail()
    stopped = time.monotonic()
    await eventually(lambda: _holder(kube_server) == "a", within=10)
    record_property("handover_after_release_s", round(time.monotonic() - stopped, 2))
    await _role(a, "leader", within=5)
    _set_min(kube_server, 4)
    await _all_at(kube_server, 4)
    await asyncio.sleep(2.0)

    # Every change happened once, in order, and each by the process that led at the time.
    assert history.values == {t: [1, 2, 3, 4] for t in TARGETS}
    assert _scale_patches(a, until=frozen) == {t: 1 for t in TARGETS}
    assert _scale_patches(b) == {t: 1 for t in TARGETS}
    assert _scale_patches(b, since=frozen, until=handed_over) == {t: 1 for t in TARGETS}
    assert _scale_patches(a, since=frozen, until=handed_over) == {t: 0 for t in TARGETS}
    assert _scale_patches(a, since=handed_over) == {t: 1 for t in TARGETS}
    events = [e for e in kube_server.list_objects("events.k8s.io/v1", "Event", NS)
              if e["regarding"]["name"] == "le" and e["reason"] == "ManualChange"]
    assert not events, [e["note"] for e in events]
    lease = kube_server.get("coordination.k8s.io/v1", "Lease", "inference-autoscaler", NS)
    assert (lease["spec"]["holderIdentity"], lease["spec"]["leaseTransitions"]) == ("a", 2)
