"""The cluster-in-a-box run shared by every e2e test: started once per session, run to the end of the trace
segment, observed from outside, and stopped before any assertion runs (so a failing assertion never leaks a
process). ``E2E_SPEED`` overrides the time acceleration; ``E2E_KEEP=1`` keeps the work directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from e2e.harness import Box, Scenario
from e2e.twin import twin_reference


@dataclass
class Run:
    """Everything observed during one box run (plain data)."""

    scenario: Scenario
    result: dict[str, Any]
    history: list[Any]
    snapshots: list[tuple[float, str, dict[str, Any]]]
    events: dict[str, list[dict[str, Any]]]
    ias: dict[str, dict[str, Any]]
    kubectl: str | None
    controller_metrics: str
    hpa: dict[str, dict[str, Any]]  # per HPA-mode pool: Box.hpa_view (the HPA objects and their Events)
    replicas: dict[str, dict[str, Any]]  # Box.replica_view at the end, once its three views agree (or the last)
    exit_codes: dict[str, int | None]
    wall_s: float
    logs: dict[str, str] = field(default_factory=dict)
    twin: dict[str, Any] = field(default_factory=dict)  # e2e.twin.twin_reference of the same scenario


def _print_row(box: Box, row: Any) -> None:
    print(f"  t={row.sim_t:6.0f}s  {row.pool:<10} prefill {row.prefill:<6} decode {row.decode:<6} "
          f"TTFT {row.ttft:<14} {row.reason}", flush=True)


def views_agree(view: dict[str, Any]) -> bool:
    """The API server's live Pods are the fleet's replicas (same names; Ready exactly when serving), as many per
    role as the Deployment's ``spec.replicas``, and Prometheus scrapes exactly the serving and draining ones."""
    serving = {name for name, state in view["fleet"].items() if state == "READY"}
    counts = {role: sum(1 for name in view["api"] if name.startswith(f"{deploy}-"))
              for role, deploy in view["deployments"].items()}
    return (set(view["api"]) == set(view["fleet"])
            and counts == view["spec"]
            and {name for name, ready in view["api"].items() if ready} == serving
            and set(view["scraped"]) == serving | set(view["draining"]))


async def _agreed_replica_view(box: Box, timeout_s: float = 20.0) -> dict[str, dict[str, Any]]:
    """The views change while the loop runs (a scale action in flight, a scrape not yet refreshed): poll until a
    snapshot agrees everywhere, else return the last one (which the test then shows)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            view = await box.replica_view()
        except (TimeoutError, aiohttp.ClientError):
            if time.monotonic() > deadline:
                raise
            continue  # a starved fleet or Prometheus answered late
        if all(views_agree(v) for v in view.values()) or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.5)


async def _run(scenario: Scenario, twin: Callable[[Scenario], dict[str, Any]] = twin_reference) -> Run:
    t0 = time.monotonic()
    box = Box(scenario, on_change=_print_row)
    try:
        await box.start()
        budget = scenario.wall(scenario.end_s - scenario.start_s) + 120
        result = await box.wait_finished(budget)
        names = [p for p, _ in scenario.pools]
        events = {n: await box.events(n) for n in names}
        ias = {n: await box.get_ias(n) for n in names}
        kubectl = box.kubectl_get_ias() if shutil.which("kubectl") else None
        metrics = await box.controller_metrics()
        replicas = await _agreed_replica_view(box)
        hpa = {n: box.hpa_view(n) for n, actuation in scenario.pools if actuation.startswith("HPA")}
    finally:
        logs = {n: p.log_text()[-20000:] for n, p in box.procs.items()}
        await box.stop()
    wall_s = time.monotonic() - t0
    return Run(scenario, result, box.history, box.snapshots, events, ias, kubectl, metrics, hpa, replicas,
               box.exit_codes, wall_s, logs, twin(scenario))


@pytest.fixture(scope="session")
def run() -> Run:
    if os.environ.get("KUBECONFIG_E2E"):
        pytest.skip("real-cluster mode: see e2e/README.md (the in-box run needs no KUBECONFIG_E2E)")
    speed = float(os.environ.get("E2E_SPEED", Scenario.speed))
    return asyncio.run(_run(Scenario(speed=speed)))
