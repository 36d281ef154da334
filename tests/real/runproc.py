"""Real ``inference-autoscaler run`` processes against the local control plane, each through its own fault proxy.

One proxy per process tells apart who sent which request (``RunProcess.proxy.requests``). The ``run_process``
fixture hands out a starter; every process it started is stopped (SIGCONT, SIGTERM, SIGKILL after a grace period)
and every proxy closed when the test ends, also when it fails.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from localcluster.faultproxy import FaultProxy
from localcluster.plane import ControlPlane
from localcluster.procs import ROOT, Proc, free_port, http_ready


@dataclass
class RunProcess:
    """One running controller process.

    Attributes:
        proc: the child process (log in ``proc.log_path``).
        proxy: the fault proxy only this process talks to (its recorded requests are its own).
        health_port, metrics_port: its ``/readyz`` and ``/metrics`` ports on 127.0.0.1.
    """

    name: str
    proc: Proc
    proxy: FaultProxy
    health_port: int
    metrics_port: int

    async def role(self) -> str:
        """``leader`` or ``standby``, as ``/readyz`` reports it (``""`` while not ready or not answering)."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
                http.get(f"http://127.0.0.1:{self.health_port}/readyz") as r,
            ):
                text = await r.text()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return ""
        return "leader" if "(leader)" in text else "standby" if "(standby)" in text else ""

    async def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM (after SIGCONT), SIGKILL after ``grace_s``; the exit code. Waits in a thread: the proxy the
        process talks to while it shuts down (releasing its Lease) runs on this event loop."""
        return await asyncio.to_thread(self.proc.stop, grace_s)

    def writes(self, since: float = 0.0) -> list[tuple[str, str, int | None]]:
        """``(method, path, status)`` of every non-GET request this process sent after ``since`` (monotonic)."""
        return [(r.method, r.path, r.status) for r in self.proxy.requests if r.method != "GET" and r.started >= since]


Starter = Callable[..., Awaitable[RunProcess]]


async def start_proxy(plane: ControlPlane, stem: str) -> FaultProxy:
    """A started fault proxy in front of the apiserver, with a serving certificate from the cluster CA."""
    assert plane.ca is not None
    cert = plane.ca.issue(stem, "127.0.0.1", server=True, hosts=("127.0.0.1", "localhost"))
    proxy = FaultProxy(plane.url, str(plane.ca.path), str(cert.cert), str(cert.key))
    await proxy.start()
    return proxy


@pytest_asyncio.fixture
async def run_process(kube_server: Any, tmp_path: Path) -> AsyncIterator[Starter]:
    """Start ``inference-autoscaler run`` processes: ``await run_process(name, *flags, env=...)``."""
    started: list[RunProcess] = []
    proxies: list[FaultProxy] = []

    async def start(name: str, *flags: str, env: dict[str, str] | None = None) -> RunProcess:
        plane = kube_server.plane
        proxy = await start_proxy(plane, f"proxy-{name}-{tmp_path.name}")
        proxies.append(proxy)
        kubeconfig = plane.kubeconfig(tmp_path / f"{name}.kubeconfig", server=proxy.url)
        hport, mport = free_port(), free_port()
        argv = [
            sys.executable, "-m", "autoscaler", "run", "--kubeconfig", str(kubeconfig),
            "--health-host", "127.0.0.1", "--health-port", str(hport),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(mport),
            "--log-format", "console", *flags,
        ]  # fmt: skip
        proc = Proc(name, argv, tmp_path, env={"PYTHONPATH": str(ROOT), **(env or {})})
        rp = RunProcess(name, proc, proxy, hport, mport)
        started.append(rp)
        await http_ready(f"http://127.0.0.1:{hport}/readyz", 60, proc)
        return rp

    try:
        yield start
    finally:
        for rp in started:
            await rp.stop()
        for proxy in proxies:
            await proxy.stop()
