"""The scorecard's ``hpa-queue`` baseline run by the real HPA controller in the box, against the twin's.

One box with a single pool whose HorizontalPodAutoscalers run the HPA on waiting requests
(``inference_autoscaler_queue_depth``, ``AverageValue`` 5 per replica, the HPA's default behaviour time-scaled;
``e2e/harness.py``'s ``HPA-queue``) on kube-controller-manager, with Prometheus and the real controller publishing
the metric. The same segment through the twin's ``HPAPolicy("queue", 5)`` (``e2e/twin.py``) is the reference:
attainment and GPU-hours must agree within what the live path adds (scrapes, ``rate()`` windows, the metric's
path through the controller, actuation a sync later), and the run prints replicas per minute side by side.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from e2e.conftest import Run, _run
from e2e.harness import Scenario
from e2e.twin import hpa_queue_reference, per_minute

POOL = "llama-hq"


@pytest.fixture(scope="module")
def hq_run() -> Run:
    if os.environ.get("KUBECONFIG_E2E"):
        pytest.skip("real-cluster mode: see e2e/README.md")
    speed = float(os.environ.get("E2E_SPEED", Scenario.speed))
    return asyncio.run(_run(Scenario(speed=speed, pools=((POOL, "HPA-queue"),)), twin=hpa_queue_reference))


def test_the_real_hpa_queue_baseline_matches_the_twins(hq_run: Run) -> None:
    res = hq_run.result["pools"][POOL]
    ts, summary, twin = res["timeseries"], res["summary"], hq_run.twin
    live = {role: per_minute(ts["t"], ts[f"replicas.{role}"]) for role in ("prefill", "decode")}
    att, gpu = float(summary["slo_attainment"]["both"]), float(summary["gpu_hours"]["total"])
    print(f"\nhpa-queue, real HPA vs twin: attainment {100 * att:.2f} % vs {100 * twin['attainment']:.2f} %, "
          f"GPU-hours {gpu:.2f} vs {twin['gpu_hours']:.2f}")
    print("  minute | prefill real/twin | decode real/twin")
    for k, row in enumerate(zip(live["prefill"], twin["per_minute"]["prefill"], live["decode"],
                                twin["per_minute"]["decode"], strict=False)):
        print(f"  {k:6d} | {row[0]:5.2f} / {row[1]:5.2f}     | {row[2]:5.2f} / {row[3]:5.2f}")
    hpas = hq_run.hpa[POOL]["objects"]
    assert all(any(c["type"] == "ScalingActive" and c["status"] == "True"
                   for c in h["status"].get("conditions", [])) for h in hpas.values()), hpas
    assert abs(att - twin["attainment"]) <= 0.03, (att, twin["attainment"])
    assert abs(gpu - twin["gpu_hours"]) <= 0.15 * twin["gpu_hours"], (gpu, twin["gpu_hours"])
    assert all(code == 0 for code in hq_run.exit_codes.values()), hq_run.exit_codes
