"""Reliability matrix, the control plane's own components misbehaving: kube-apiserver restarted mid-run, etcd
compacted so that the controller's watch gets a real 410 Gone from the apiserver, and a storm of 5xx, latency
and 409 answers from the fault proxy at once.

These tests restart the session's kube-apiserver (``ControlPlane.stop_apiserver`` in a worker thread, then
``start_apiserver`` from the loop's thread: same port, same etcd, a new process); each waits until it is ready
again, so later tests find a healthy plane.

Why the compaction test restarts the apiserver too: the apiserver serves watches from its watch cache, and
compacting etcd does not reach the cache's event buffer (``apiserver/pkg/storage/cacher``: the cacher polls
etcd's compaction revision every 15 s and only trims its list snapshots, ``watchCache.Compact``). A watch from
an old resourceVersion keeps being served from the buffer, as the test checks. A restarted apiserver rebuilds
its cache from the compacted etcd at the current revision, and from then on a watch from an older
resourceVersion is answered ``410 Expired: too old resource version`` (``watch_cache.go``), which is what a
client sees after a partition outlasts the cache's history.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
import requests

from autoscaler.core.types import Role
from localcluster.client import Kube
from localcluster.plane import ControlPlane
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
    replicas,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_leaked_tasks")]

IAS_PATH = "/apis/autoscaler.inference.dev/v1alpha1/inferenceautoscalers"
LEADER = {"leader_elect": True, "lease_namespace": NS, "lease_duration": 15.0, "renew_deadline": 10.0,
          "retry_period": 1.0}


def scale_patches(server: Any, name: str, status: int | None = 200) -> int:
    """Recorded PATCHes of ``name``'s ``/scale`` answered ``status``."""
    return sum(1 for r in server.requests
               if r.method == "PATCH" and r.path.endswith(f"/deployments/{name}/scale") and r.status == status)


def apiserver_down(plane: ControlPlane) -> bool:
    proc = plane.procs.get("kube-apiserver")
    return proc is None or not proc.alive()


async def start_apiserver(plane: ControlPlane) -> None:
    """Start the stopped apiserver from the event loop's own thread: a child dies with the thread that started
    it (``PR_SET_PDEATHSIG``), and a worker thread ends with the test's loop. The loop blocks while the new
    process starts (a few seconds), as if the whole machine paused."""
    await asyncio.sleep(0)
    plane.start_apiserver()


def etcd_revision(plane: ControlPlane) -> int:
    """etcd's current revision (the header of an empty range, through etcd's HTTP/JSON gateway)."""
    with requests.Session() as http:
        http.trust_env = False
        reply = http.post(f"{plane.etcd_url}/v3/kv/range", json={"key": base64.b64encode(b"\0").decode()},
                          timeout=5)
        reply.raise_for_status()
        return int(reply.json()["header"]["revision"])


def compact_etcd(plane: ControlPlane, revision: int) -> None:
    """Compact etcd's history up to ``revision`` (physically: the old revisions are gone from the backend)."""
    with requests.Session() as http:
        http.trust_env = False
        reply = http.post(f"{plane.etcd_url}/v3/kv/compaction",
                          json={"revision": str(revision), "physical": True}, timeout=30)
        reply.raise_for_status()


def first_watch_event(kube: Kube, path: str, resource_version: str) -> dict[str, Any] | None:
    """The first event of a watch of ``path`` from ``resource_version`` straight at the apiserver (None if it
    sends none within a second)."""
    params = {"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": "1"}
    with kube.http.get(kube.url + path, params=params, stream=True, timeout=10) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if line.strip():
                event: dict[str, Any] = json.loads(line)
                return event
    return None


async def test_apiserver_restart_mid_run_loses_and_duplicates_nothing(kube_server, make_controller):
    """kube-apiserver stops and comes back on the same port while the controller runs: a scale decision made
    while it is down is applied once it is back (one successful PATCH per new value), the watches resume
    (an autoscaler created after the restart is picked up) and status converges."""
    plane = kube_server.plane
    fleet(kube_server, "ar")
    kube_server.create(ias("ar", "ar"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/ar", prefill=metrics_obs(30), decode=metrics_obs(20))
    controller = await make_controller(QueuePolicy(), metrics, **LEADER)
    await eventually(lambda: replicas(kube_server, "ar-prefill") == 3 and replicas(kube_server, "ar-decode") == 2,
                     within=15)
    # The proxy records an answer's status once relayed, a moment after the apiserver applied the write.
    await eventually(lambda: (scale_patches(kube_server, "ar-prefill"), scale_patches(kube_server, "ar-decode"))
                     == (1, 1))

    stopping = asyncio.create_task(asyncio.to_thread(plane.stop_apiserver), name="stop apiserver")
    try:
        await eventually(lambda: apiserver_down(plane), within=20)
        # Decided while the apiserver is down: the /scale writes fail (503 from the proxy) until it is back.
        metrics.set(f"{NS}/ar", prefill=metrics_obs(50), decode=metrics_obs(20))
        await eventually(lambda: scale_patches(kube_server, "ar-prefill", 503) >= 1, within=20)
    finally:
        await stopping
        await start_apiserver(plane)
    await eventually(lambda: replicas(kube_server, "ar-prefill") == 5, within=30)
    fleet(kube_server, "late")
    kube_server.create(ias("late", "late"))
    metrics.set(f"{NS}/late", prefill=metrics_obs(30), decode=metrics_obs(10))
    await eventually(lambda: replicas(kube_server, "late-prefill") == 3, within=30)
    await eventually(lambda: ias_status(kube_server, "ar").get("roles", {}).get("prefill", {}).get("current") == 5,
                     within=15)
    await asyncio.sleep(2.0)  # a few more ticks: a late duplicate would show here
    assert scale_patches(kube_server, "ar-prefill") == 2  # 1→3 before, 3→5 after: nothing lost, nothing twice
    assert scale_patches(kube_server, "ar-decode") == 1
    assert replicas(kube_server, "ar-decode") == 2
    assert controller.may_write()
    assert condition(kube_server, "ar", "Ready")["status"] == "True"
    assert not [e for e in events_for(kube_server, "ar") if e["reason"] == "ManualChange"]


async def test_etcd_compaction_gives_a_real_410_and_the_controller_relists(kube_server, make_controller):
    """The controller is cut off (every request answered 503 by the proxy) while the world changes; etcd is
    compacted past everything it has seen and the apiserver restarts. When the controller reconnects, its
    watch from the old resourceVersion gets the apiserver's own 410; it relists and converges."""
    plane, kube = kube_server.plane, kube_server.kube
    fleet(kube_server, "cp")
    kube_server.create(ias("cp", "cp"))
    metrics = FakeMetrics()
    metrics.default = {Role.PREFILL: metrics_obs(20), Role.DECODE: metrics_obs(20)}
    controller = await make_controller(QueuePolicy(), metrics)
    await eventually(lambda: replicas(kube_server, "cp-prefill") == 2, within=15)
    seen_rv = kube.get("autoscaler.inference.dev/v1alpha1", "InferenceAutoscaler", "cp", NS)["metadata"][
        "resourceVersion"]
    await eventually(lambda: kube_server.request_count("GET", f"{IAS_PATH}$", watch=True), within=5)

    kube_server.faults.fail_fraction(1.0, status=503)
    kube_server.faults.drop_watches()
    relists = controller.ias.relists
    fleet(kube_server, "gone")  # created while the controller cannot see anything
    kube_server.create(ias("gone", "gone"))
    revision = await asyncio.to_thread(etcd_revision, plane)
    await asyncio.to_thread(compact_etcd, plane, revision)
    # Compaction alone: the watch cache still serves the old resourceVersion from its buffer.
    before = await asyncio.to_thread(first_watch_event, kube, IAS_PATH, seen_rv)
    assert before is not None and before["type"] in ("ADDED", "MODIFIED"), before
    await asyncio.to_thread(plane.stop_apiserver)
    await start_apiserver(plane)

    async def expired() -> dict[str, Any] | None:
        event = await asyncio.to_thread(first_watch_event, kube, IAS_PATH, seen_rv)
        return event if event and event["type"] == "ERROR" else None

    gone = None
    for _ in range(100):  # the restarted apiserver answers 429 until its watch cache is initialised
        try:
            gone = await expired()
        except requests.HTTPError as err:
            if err.response is None or err.response.status_code != 429:
                raise
        if gone:
            break
        await asyncio.sleep(0.2)
    assert gone is not None, "no ERROR event for a watch from a compacted resourceVersion"
    assert gone["object"]["code"] == 410 and "too old resource version" in gone["object"]["message"], gone
    reconnect_at = len(kube_server.requests)
    kube_server.faults.clear()

    await eventually(lambda: replicas(kube_server, "gone-prefill") == 2, within=30)
    assert controller.ias.relists > relists
    # The relist followed the controller's own watch from before the cut (the proxy saw it answered 200 with
    # the ERROR event in the stream, as the apiserver does), not a fault of the proxy's.
    after = kube_server.requests[reconnect_at:]
    watched_old = [r for r in after if r.path == IAS_PATH and r.watch
                   and int(r.query.get("resourceVersion") or revision) < revision]
    assert watched_old, [(r.method, r.path, r.query) for r in after if r.path == IAS_PATH]
    listed = [r for r in after if r.path == IAS_PATH and not r.watch and r.started > watched_old[0].started]
    assert listed, "no relist after the expired watch"
    await eventually(lambda: (c := condition(kube_server, "gone", "Ready")) is not None and c["status"] == "True",
                     within=15)


async def test_storm_of_5xx_latency_and_conflicts_converges_once(kube_server, make_controller):
    """A third of all requests answer 503, every request is 150 ms late, and the first five writes of
    status and /scale get 409: the controller converges, each role is patched successfully once, and status
    and Events are written."""
    fleet(kube_server, "storm")
    kube_server.create(ias("storm", "storm"))
    kube_server.faults.fail_fraction(0.33, status=503, seed=7)
    kube_server.faults.add_latency(0.15)
    kube_server.faults.conflict_storm(5, path=r"/(scale|status)$")
    metrics = FakeMetrics()
    metrics.set(f"{NS}/storm", prefill=metrics_obs(40), decode=metrics_obs(30))
    await make_controller(QueuePolicy(), metrics, api_timeout=2.0)
    await eventually(
        lambda: replicas(kube_server, "storm-prefill") == 4 and replicas(kube_server, "storm-decode") == 3,
        within=40)
    st = await eventually(
        lambda: (s := ias_status(kube_server, "storm")).get("roles", {}).get("decode", {}).get("current") == 3
        and s, within=40)
    assert st["roles"]["prefill"]["current"] == 4
    await eventually(lambda: [e for e in events_for(kube_server, "storm") if e["reason"] == "LoadScaleUp"],
                     within=20)
    await asyncio.sleep(1.0)
    assert scale_patches(kube_server, "storm-prefill") == 1 and scale_patches(kube_server, "storm-decode") == 1
    failed = sum(1 for r in kube_server.requests if r.status in (409, 503))
    assert failed >= 5, failed
