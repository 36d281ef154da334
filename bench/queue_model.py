"""Prefill queueing model vs the twin: fixed fleets replaying the Azure conversation trace.

For each prefill fleet size, the twin replays the first 30 minutes of the bundled Azure conversation trace ×8
(Llama2-70B TP4 H100, disaggregated, decode fixed and ample); every minute's measured TTFT p95 is printed next
to the capacity model's prediction at that minute's arrival rate and mean prompt, pooled (one M/G/n queue)
and per replica (n M/G/1 queues, the default). docs/control.md quotes the table.

    PYTHONPATH=. python bench/queue_model.py [--fleets 9,11,13,16,19]

Prints ``fleet, req/s, twin p95, pooled, per-replica`` rows and, per fleet, the median ratio model/twin.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from autoscaler.catalog import load_profile
from autoscaler.core.baselines import StaticPolicy
from autoscaler.core.capacity import ModelParams, ttft_quantile
from autoscaler.core.types import Role
from autoscaler.sim import scorecard as sc
from autoscaler.sim.config import Mode, RoleShape, SimConfig
from autoscaler.sim.engine import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fleets", default="9,11,13,16,19", help="prefill fleet sizes, comma-separated")
    args = ap.parse_args()
    scenario = next(s for s in sc.default_scenarios() if s.name == "azure_conv")
    trace = sc._load(scenario, 0)
    profile = load_profile("llama2-70b/h100/tp4")
    spec = sc.build_spec(profile)
    arrivals = np.asarray(trace.arrivals_s)
    prompts = np.asarray(trace.input_tokens)
    pooled, single = ModelParams(pooled=True), ModelParams(pooled=False)
    print("fleet  req/s  twin_p95  pooled  per_replica")
    for n in (int(x) for x in args.fleets.split(",")):
        fleet = {Role.PREFILL: n, Role.DECODE: 24}
        roles = {r: RoleShape(initial=k, min_replicas=1, max_replicas=200) for r, k in fleet.items()}
        config = SimConfig(mode=Mode.DISAGGREGATED, roles=roles, slo_ttft_s=1.0, slo_itl_s=0.1, slo_percentile=95)
        result = simulate(trace, profile, config, StaticPolicy(fleet), spec, seed=0)
        arr, ttft = np.asarray(result.arrival), np.asarray(result.ttft)
        ratios: dict[str, list[float]] = {"pooled": [], "per_replica": []}
        for minute in range(2, int(arrivals.max() // 60)):
            sel = (arr >= minute * 60) & (arr < (minute + 1) * 60)
            src = (arrivals >= minute * 60) & (arrivals < (minute + 1) * 60)
            if not sel.any():
                continue
            lam, mean_prompt = sel.sum() / 60.0, float(prompts[src].mean())
            twin = float(np.percentile(ttft[sel], 95))
            p = ttft_quantile(profile, n, lam, mean_prompt, 0.95, pooled)
            s = ttft_quantile(profile, n, lam, mean_prompt, 0.95, single)
            ratios["pooled"].append(p / twin)
            ratios["per_replica"].append(s / twin)
            print(f"{n:5d}  {lam:5.1f}  {twin:8.2f}  {p:6.2f}  {s:11.2f}")
        med = {k: statistics.median(v) for k, v in ratios.items() if v}
        print(f"# fleet {n}: median model/twin pooled {med['pooled']:.2f}, per-replica {med['per_replica']:.2f}")


if __name__ == "__main__":
    main()
