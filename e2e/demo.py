"""``make demo``: a short cluster-in-a-box session — the real controller, on its embedded defaults, keeping a
twin-driven pool inside its SLO — then the run's figures next to what a static fleet and a reactive (HPA-style)
autoscaler would have done on the twin for the same trace segment.

``python -m e2e.demo [--speed 15] [--start 20m] [--end 40m]``
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from typing import Any

from autoscaler.api.durations import parse_duration
from autoscaler.catalog import load_profile
from autoscaler.core.types import Role
from autoscaler.sim.config import Mode, RoleShape, SimConfig
from autoscaler.sim.engine import simulate
from autoscaler.sim.policies import policy_from_string, policy_names
from autoscaler.sim.traces import bundled_trace_path, load_trace
from e2e.harness import Box, Scenario


def _get_ias(box: Box) -> str:
    try:
        return box.kubectl_get_ias()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        return f"({err})\n"


def _twin(sc: Scenario, policy: str) -> dict[str, Any]:
    trace = load_trace(bundled_trace_path(sc.trace), start_s=sc.start_s, end_s=sc.end_s)
    cfg = SimConfig(mode=Mode.DISAGGREGATED,
                    roles={r: RoleShape(sc.initial, 1, sc.max_replicas) for r in (Role.PREFILL, Role.DECODE)},
                    slo_ttft_s=sc.slo_ttft_s, slo_itl_s=sc.slo_itl_s)
    return simulate(trace, load_profile(sc.profile), cfg, policy_from_string(policy)).summary


async def _main(sc: Scenario) -> int:
    last: dict[str, str] = {}

    def on_change(box: Box, row: Any) -> None:
        text = _get_ias(box)
        if last.get("text") != text:
            last["text"] = text
            print(f"--- t = {row.sim_t / 60:4.1f} min (simulated) ---\n{text}", flush=True)

    t0 = time.monotonic()
    async with Box(sc, on_change=on_change) as box:
        print(f"cluster in a box up in {time.monotonic() - t0:.0f} s: etcd, kube-apiserver and "
              f"kube-controller-manager, {len(sc.pools)} pool of twin-driven vLLM replicas, Prometheus, and "
              f"`inference-autoscaler run`; "
              f"{(sc.end_s - sc.start_s) / 60:.0f} min of the Azure conversation trace at {sc.speed:g}x\n",
              flush=True)
        result = await box.wait_finished(sc.wall(sc.end_s - sc.start_s) + 120)
    rows = [("inference-autoscaler (this run)", result["pools"][sc.pools[0][0]]["summary"])]
    candidates = ["static:2", "static:4", "hpa-queue:5" if "hpa-queue" in policy_names() else "reactive"]
    for name in candidates:
        rows.append((f"{name} (twin)", _twin(sc, name)))
    print(f"\n{'policy':<34} {'SLO attainment':>15} {'GPU-hours':>10} {'scaling actions':>16}")
    for name, s in rows:
        print(f"{name:<34} {100 * s['slo_attainment']['both']:>14.2f}% {s['gpu_hours']['total']:>10.2f} "
              f"{s['scaling_actions']:>16}")
    print("\nSLO: p95 TTFT ≤ 1 s and ITL ≤ 100 ms per request; attainment = share of requests meeting both "
          "(the twin's ground truth). GPU-hours bill every replica from the moment it is requested.")
    return 0


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__)
    p.add_argument("--speed", type=float, default=15.0, help="simulated seconds per wall second (default 15)")
    p.add_argument("--start", default="20m", help="segment start in the trace (default 20m)")
    p.add_argument("--end", default="40m", help="segment end in the trace (default 40m)")
    args = p.parse_args()
    sc = Scenario(speed=args.speed, start_s=parse_duration(args.start), end_s=parse_duration(args.end),
                  pools=(("llama", "Direct"),))
    try:
        sys.exit(asyncio.run(_main(sc)))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
