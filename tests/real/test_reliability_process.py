"""The controller process under signals: the real ``inference-autoscaler run`` entry point as a subprocess
against the real kube-apiserver (through the recording fault proxy).

- SIGTERM while a ``/scale`` write is in flight: the process exits 0 within the shutdown grace, the write
  completes (each role changed at most once, every started write answered), the Lease is released and no new
  reconcile starts after the signal.
- SIGKILL after the scale writes but before the status write, then a fresh process: no second scale write
  (the request log shows one PATCH per role for the desired value), nothing lost (the desired replicas hold)
  and the status resumes, written by the new process.

The scale action needs no metrics: no Prometheus listens at the spec's URL, so the policy holds, and a hold
clamps the current replicas (1) into ``[minReplicas, maxReplicas]`` = ``[3, 8]`` — a real scale-up through the
same decide → actuate → status path as any other. Leader election is on, with a short Lease so that the restarted
process takes over quickly after SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio

from localcluster.procs import free_port
from tests.fixtures.controller import NS, events_for, fleet, ias, ias_status, replicas

ROOT = Path(__file__).resolve().parents[2]
NAME = "proc"
ROLES = ("prefill", "decode")
MIN = 3
GRACE = 6.0  # IAS_SHUTDOWN_GRACE, seconds
SCALE = r"/deployments/[^/]+/scale$"
STATUS = rf"/inferenceautoscalers/{NAME}/status$"
LEASE = r"/leases"


def _setup(server: Any) -> None:
    fleet(server, NAME)  # both Deployments at 1 replica
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every tick holds (clamped to min)
    obj = ias(NAME, NAME, metrics={"prometheus": {"url": dead, "timeout": "1s"}})
    for role in ROLES:
        obj["spec"]["roles"][role]["minReplicas"] = MIN
    server.create(obj)


def _writes(server: Any, pattern: str, since: int = 0) -> list[Any]:
    import re

    pat = re.compile(pattern)
    return [r for r in server.requests[since:] if r.method in ("PATCH", "PUT", "POST") and pat.search(r.path)]


def _scale_patches(server: Any, role: str, since: int = 0) -> list[Any]:
    return [r for r in _writes(server, SCALE, since) if r.path.endswith(f"/{NAME}-{role}/scale")]


async def _until(check: Callable[[], Any], within: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not reached within {within}s; last: {last!r}")


Spawn = Callable[[], Awaitable[asyncio.subprocess.Process]]


@pytest_asyncio.fixture
async def spawn(kubeconfig_path: Path) -> AsyncIterator[Spawn]:
    """Start ``inference-autoscaler run`` processes; every one still alive is killed (and reaped) after."""
    procs: list[asyncio.subprocess.Process] = []
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "IAS_LEASE_NAMESPACE": NS,
        "IAS_LEASE_DURATION": "3",
        "IAS_RENEW_DEADLINE": "2",
        "IAS_RETRY_PERIOD": "0.5",
        "IAS_SHUTDOWN_GRACE": str(GRACE),
    }

    async def start() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autoscaler", "run",
            "--kubeconfig", str(kubeconfig_path),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(free_port()),
            "--health-host", "127.0.0.1", "--health-port", str(free_port()),
            "--external-metrics-port", "-1",
            "--log-format", "console",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _log(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    return (await proc.stdout.read()).decode(errors="replace")[-3000:]


async def test_sigterm_mid_scale_write_finishes_the_write_and_exits_cleanly(
    kube_server: Any, spawn: Spawn
) -> None:
    _setup(kube_server)
    kube_server.faults.add_latency(1.5, method="PATCH", path=SCALE)  # the write is slow: SIGTERM lands inside
    proc = await spawn()
    first = await _until(lambda: _writes(kube_server, SCALE), 30, "a /scale PATCH started")
    assert first[0].status is None, "the write must still be in flight when SIGTERM is sent"
    at_signal = len(kube_server.requests)
    proc.send_signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.wait_for(proc.wait(), timeout=GRACE + 5)
    log = await _log(proc)
    assert proc.returncode == 0, log
    assert loop.time() - t0 < GRACE + 5

    # The in-flight write completed: every scale PATCH that started was answered 200 and took effect, each
    # role changed at most once, and the one in flight when the signal came was applied.
    patched = {role: _scale_patches(kube_server, role) for role in ROLES}
    for role, recs in patched.items():
        assert len(recs) <= 1, (role, recs)
        assert all(r.status == 200 for r in recs), (role, recs, log)
        assert replicas(kube_server, f"{NAME}-{role}") == (MIN if recs else 1), role
    assert first[0].status == 200
    # No new reconcile after the signal: at most the in-flight reconcile's own status write, no second one.
    assert len(_writes(kube_server, STATUS, at_signal)) <= 1
    # The Lease was released on the way out (a standby may take over at once).
    lease = kube_server.get("coordination.k8s.io/v1", "Lease", "inference-autoscaler", NS)
    assert not lease["spec"].get("holderIdentity"), lease
    # Nothing reaches the server once the process has gone.
    settled = len(kube_server.requests)
    await asyncio.sleep(0.5)
    assert len(kube_server.requests) == settled


async def test_sigkill_after_scale_then_restart_no_duplicate_or_lost_action(
    kube_server: Any, spawn: Spawn
) -> None:
    _setup(kube_server)
    # Status writes hang: the first process dies after its scale writes and before its status write lands.
    kube_server.faults.add_latency(60, method="PATCH", path=STATUS)
    kube_server.faults.add_latency(60, method="PUT", path=STATUS)
    first = await spawn()
    await _until(
        lambda: all(
            [r.status for r in _scale_patches(kube_server, role)] == [200] for role in ROLES
        ) and _writes(kube_server, STATUS),
        30,
        "both scale PATCHes answered and a status write in flight",
    )  # fmt: skip
    assert all(replicas(kube_server, f"{NAME}-{role}") == MIN for role in ROLES)
    first.kill()
    await first.wait()
    assert first.returncode == -signal.SIGKILL
    status = ias_status(kube_server, NAME)
    assert "lastDecision" not in status and "observedGeneration" not in status, status

    kube_server.faults.clear()
    restart_at = len(kube_server.requests)
    second = await spawn()
    generation = kube_server.get("autoscaler.inference.dev/v1alpha1", "InferenceAutoscaler", NAME, NS)[
        "metadata"
    ]["generation"]

    def resumed() -> Any:
        st = ias_status(kube_server, NAME)
        done = [r for r in _writes(kube_server, STATUS, restart_at) if r.status == 200]
        return st if done and st.get("observedGeneration") == generation and st.get("lastDecision") else None

    status = await _until(resumed, 30, "status written by the new process")
    # Let the new process run a few more ticks (controlInterval 1 s) to catch any late duplicate.
    await asyncio.sleep(2.5)
    second.send_signal(signal.SIGTERM)
    await asyncio.wait_for(second.wait(), timeout=GRACE + 5)
    log = await _log(second)
    assert second.returncode == 0, log

    for role in ROLES:
        # No duplicate: the only scale PATCH of each role is the first process's; the new one saw 3 and held.
        assert [r.status for r in _scale_patches(kube_server, role)] == [200], role
        assert _scale_patches(kube_server, role, restart_at) == [], role
        # Nothing lost: the desired replicas are in place.
        assert replicas(kube_server, f"{NAME}-{role}") == MIN, role
    assert status["lastDecision"]["reason"], status
    for role in ROLES:
        assert status["roles"][role]["desired"] == MIN and status["roles"][role]["current"] == MIN, status
    # The restart is not mistaken for a human editing replicas.
    assert not [e for e in events_for(kube_server, NAME) if e.get("reason") == "ManualChange"]
