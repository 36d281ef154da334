"""The fleet as the kubelet of the real control plane: one simulated replica per Pod, whichever Pods the
ReplicaSet chooses to delete. ``spec.replicas`` is changed by hand here (no controller, no Prometheus), so that a
scale-down lands while new replicas are still cold-starting and another after they serve."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.core.types import Role
from autoscaler.sim.fleet import Replica, ReplicaState
from e2e.fleet import FleetEmulator
from e2e.harness import NAMESPACE, Scenario
from localcluster.client import Kube
from localcluster.plane import ControlPlane

POOL = "llama"
PREFILL = f"{POOL}-prefill"


@pytest.fixture
def plane() -> Iterator[tuple[ControlPlane, Kube]]:
    """A control plane with the pool's two Deployments (2 replicas each); stopped afterwards."""
    with ControlPlane() as p:  # on the main thread: the plane's children die with the thread that started them
        assert p.ca is not None
        kube = Kube(p.url, p.admin_token, str(p.ca.path))
        try:
            kube.ensure_namespace(NAMESPACE)
            sc = Scenario(pools=((POOL, "Direct"),))
            for obj in sc.manifests("http://127.0.0.1:9"):
                if obj["kind"] == "Deployment":
                    kube.create(obj)
            yield p, kube
        finally:
            kube.close()


def _async(check: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        return check()
    return run


def _ready_after(pod: dict[str, Any]) -> float | None:
    """Seconds from the Pod's creation to its Ready condition, or None while it is not Ready."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready" and c["status"] == "True":
            created = dt.datetime.fromisoformat(pod["metadata"]["creationTimestamp"])
            return (dt.datetime.fromisoformat(c["lastTransitionTime"]) - created).total_seconds()
    return None


def _fleet_config(p: ControlPlane, tmp: Path) -> dict[str, Any]:
    assert p.ca is not None
    sc = Scenario()
    return {
        "kubeconfig": str(p.kubeconfig(tmp / "kubeconfig")), "namespace": NAMESPACE, "speed": sc.speed,
        "kubelet": {"url": p.url, "token": p.admin_token, "ca_file": str(p.ca.path)},
        "file_sd": str(tmp / "targets.json"), "result": str(tmp / "result.json"), "profile": sc.profile,
        "trace": {"name": sc.trace, "start_s": sc.start_s, "end_s": sc.end_s},
        "slo": {"ttft_s": sc.slo_ttft_s, "itl_s": sc.slo_itl_s, "percentile": sc.percentile},
        "sim_interval_s": sc.control_interval_s,
        "pools": [{"name": POOL, "deployments": {"prefill": PREFILL, "decode": f"{POOL}-decode"}}],
    }


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


async def test_replicas_follow_the_pods_the_replicaset_keeps(plane: tuple[ControlPlane, Kube], tmp_path: Path) -> None:
    p, kube = plane
    fleet = FleetEmulator(_fleet_config(p, tmp_path))
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop))

    async def pods() -> dict[str, float | None]:
        """Live (not terminating) prefill Pods on the API server: name → seconds from creation to Ready (None:
        not Ready). Read in a thread: the fleet runs on this loop, which must never block."""
        items = await asyncio.to_thread(kube.list_objects, "v1", "Pod", NAMESPACE,
                                        label_selector=f"app={POOL},llm-d.ai/role=prefill")
        return {i["metadata"]["name"]: _ready_after(i) for i in items if not i["metadata"].get("deletionTimestamp")}

    def replicas() -> dict[str, Replica]:  # on the loop, between the fleet's steps
        """The fleet's live prefill Pods → their replicas."""
        pool = fleet.pools[POOL]
        return {pool.pod_name(r): r for r in pool.by_pod.values() if r.role is Role.PREFILL}

    async def scale(n: int) -> None:
        await asyncio.to_thread(kube.patch, "apps/v1", "Deployment", PREFILL, NAMESPACE,
                                {"spec": {"replicas": n}}, sub="scale")

    def agree(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            live = await pods()
            return len(live) == n and set(live) == set(replicas())
        return check

    try:
        await _until(_async(lambda: fleet.port), "the fleet serving (its initial Pods Ready)", 120)
        warm = replicas()
        assert len(warm) == 2 and all(r.state is ReplicaState.READY for r in warm.values())
        assert all(v is not None for v in (await pods()).values())

        await scale(4)
        await _until(agree(4), "4 Pods, each a replica")
        new = {n: r for n, r in replicas().items() if n not in warm}
        assert [r.state for r in new.values()] == [ReplicaState.STARTING] * 2  # cold start: 155 s simulated

        # Down by one while both new replicas start: the ReplicaSet deletes a not-Ready Pod, and exactly that
        # Pod's replica is cancelled; the other keeps starting, the warm ones keep serving.
        await scale(3)
        await _until(agree(3), "3 Pods, each a replica")
        kept = replicas()
        (gone,) = set(new) - set(kept)
        assert new[gone].state is ReplicaState.GONE
        assert sorted(r.state for r in kept.values()) == [ReplicaState.STARTING, ReplicaState.READY,
                                                         ReplicaState.READY]

        # The starting replica serves after its cold start (155 s simulated, 10.3 s wall), and only then is its
        # Pod Ready (timestamps have one-second resolution).
        (starting,) = [n for n, r in kept.items() if r.state is ReplicaState.STARTING]

        async def ready_after() -> float | None:
            return (await pods()).get(starting)

        assert await _until(ready_after, "the new Pod Ready", 60) >= fleet.profile.cold_start_s / fleet.speed - 2
        assert kept[starting].state is ReplicaState.READY

        # Down to one: whichever two Pods the ReplicaSet deletes, their replicas drain, the survivor's serves.
        await scale(1)
        await _until(agree(1), "1 Pod, its replica")
        (survivor,) = replicas()
        assert kept[survivor].state is ReplicaState.READY
        for name in set(kept) - {survivor}:
            assert kept[name].state in (ReplicaState.DRAINING, ReplicaState.GONE), name
        assert fleet.pools[POOL].sim.fleet.target(Role.PREFILL) == 1
    finally:
        stop.set()
        await task
