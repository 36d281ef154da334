"""Speed of the digital twin (not a test): requests simulated per wall second and speed-up over real time.

1. The 1-hour Azure LLM conversation trace (19,366 requests) on a fixed fleet of 16 aggregated replicas
   (Llama2-70B / H100 / TP4): median of 5 runs.
2. Scaling: time versus requests (the trace replayed at 1×, 2×, 4× rate) and versus replicas (4 … 64).
3. One day of the ServeGen m-large envelope (day 0) scaled to ≈ 20 req/s (≈ 1.7 M requests), one run.

Run from the repository root: ``python bench/sim_speed.py [--quick]``. Needs the trace loaders
(``autoscaler.sim.traces``) and the measured profiles (``autoscaler.catalog``).
"""

from __future__ import annotations

import argparse
import statistics
import time

from autoscaler.catalog import load_profile
from autoscaler.core.types import Role
from autoscaler.sim.config import RoleShape, SimConfig
from autoscaler.sim.engine import simulate
from autoscaler.sim.policies import policy_from_string
from autoscaler.sim.traces import bundled_trace_path, load_trace

PROFILE = "llama2-70b/h100/tp4"


def _run(trace, profile, replicas: int) -> tuple[float, dict]:
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=replicas, max_replicas=replicas)})
    t0 = time.perf_counter()
    res = simulate(trace, profile, cfg, policy_from_string(f"static:{replicas}"))
    return time.perf_counter() - t0, res.summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the ServeGen day")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    profile = load_profile(PROFILE)
    conv = load_trace(bundled_trace_path("azure_conv"))
    walls = []
    for _ in range(args.repeat):
        wall, summary = _run(conv, profile, 16)
        walls.append(wall)
    med = statistics.median(walls)
    span = float(conv.arrivals_s[-1] - conv.arrivals_s[0])
    print(f"azure_conv, 16 replicas, {PROFILE}: {len(conv):,} requests, {span:.0f} s of traffic")
    print(f"  wall median of {args.repeat}: {med:.3f} s  (runs: {', '.join(f'{w:.3f}' for w in walls)})")
    print(f"  {len(conv) / med:,.0f} requests/s, {span / med:,.0f}× real time")
    print(f"  SLO attainment both: {summary['slo_attainment']['both']:.4f}, GPU-hours {summary['gpu_hours']['total']:.1f}")
    print()
    print("| rate × | replicas | requests | wall s (median of 3) | requests/s | × real time |")
    print("|---|---|---|---|---|---|")
    for rate, reps in ((1, 4), (1, 16), (1, 64), (2, 32), (4, 64)):
        tr = load_trace(bundled_trace_path("azure_conv"), rate_scale=float(rate), seed=1)
        ws = [_run(tr, profile, reps)[0] for _ in range(3)]
        w = statistics.median(ws)
        sp = float(tr.arrivals_s[-1] - tr.arrivals_s[0])
        print(f"| {rate} | {reps} | {len(tr):,} | {w:.3f} | {len(tr) / w:,.0f} | {sp / w:,.0f} |")
    if args.quick:
        return
    path = bundled_trace_path("servegen_m_large")
    # day 0 of 14; the envelope's mean is ≈ 196 req/s, so rate-scale ≈ 0.1 gives ≈ 20 req/s
    day = load_trace(path, start_s=0.0, end_s=86_400.0, rate_scale=0.1, seed=0)
    reps = 64
    wall, summary = _run(day, profile, reps)
    print()
    print(f"ServeGen m-large day 0 at ×0.1 rate: {len(day):,} requests on {reps} replicas: {wall:.1f} s wall, "
          f"{len(day) / wall:,.0f} requests/s, {86_400 / wall:,.0f}× real time, "
          f"SLO both {summary['slo_attainment']['both']:.4f}")


if __name__ == "__main__":
    main()
