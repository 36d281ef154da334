"""Speed of the controller's pure ``decide`` with a full memory: decisions per second on one core.

    PYTHONPATH=. python bench/decide_speed.py [--steps 600] [--calls 300] [--runs 5]

The controller calls ``decide`` once per InferenceAutoscaler per interval, so at 1,000 resources and a 15 s
interval it must take well under 15 ms. The state is warmed with ``--steps`` observations (15 s apart, a
daily-ish sine of load with noise: Holt-Winters fitted, the rise band and the decode step window full), then
``--calls`` further decisions are timed. Reported: the median over ``--runs`` of decisions/s and ms per
decision, with the decode step reserve on (default 40 lead times) and off, their ratio, and how many demand
samples the state keeps.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

from autoscaler.catalog import load_profile
from autoscaler.core.slo import ReserveTuning, SLOPolicy, SLOState, Tuning
from autoscaler.core.types import Observation, Role, RoleObservation
from autoscaler.sim.scorecard import build_spec


def _obs(t: float, rng: random.Random) -> Observation:
    rate = 40.0 * (1.0 + 0.5 * math.sin(2 * math.pi * t / 3600.0)) * rng.uniform(0.9, 1.1)
    roles = {}
    for role in (Role.PREFILL, Role.DECODE):
        roles[role] = RoleObservation(
            replicas=20,
            ready=20,
            starting=0,
            ttft=0.5,
            itl=0.05,
            queue_depth=1.0,
            running=300.0,
            kv_utilization=0.5,
            arrival_rate=rate,
            prompt_tokens_rate=rate * 1100.0,
            generation_tokens_rate=rate * 210.0,
            reporting=20,
        )
    return Observation(time=t, roles=roles, source_ok=True, error="")


def measure(tuning: Tuning, steps: int, calls: int, seed: int) -> tuple[float, int]:
    """Seconds per ``decide`` after ``steps`` warm-up steps, and the demand entries the state keeps (samples
    plus the step reserve's remembered climbs)."""
    profile = load_profile("llama2-70b/h100/tp4")
    spec = build_spec(profile, season_s=3600.0)
    policy = SLOPolicy(profile, tuning=tuning)
    rng = random.Random(seed)
    state: SLOState = policy.initial_state(spec, 0.0)
    t = 0.0
    for _ in range(steps):
        _, state = policy.decide(spec, _obs(t, rng), state, t)
        t += 15.0
    observations = [_obs(t + 15.0 * k, rng) for k in range(calls)]
    start = time.perf_counter()
    for k, obs in enumerate(observations):
        _, state = policy.decide(spec, obs, state, t + 15.0 * k)
    elapsed = time.perf_counter() - start
    climbs = getattr(state, "decode_step", None)
    return elapsed / calls, len(state.recent) + (len(climbs.climbs) if climbs is not None else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600, help="warm-up decisions (15 s apart)")
    ap.add_argument("--calls", type=int, default=300, help="timed decisions per run")
    ap.add_argument("--runs", type=int, default=5, help="runs; the median is reported")
    args = ap.parse_args()
    for label, tuning in (
        ("step reserve on (40 leads)", Tuning()),
        ("step reserve off", Tuning(reserve=ReserveTuning(decode_step_window_leads=0.0))),
    ):
        per, kept = [], 0
        for run in range(args.runs):
            s, kept = measure(tuning, args.steps, args.calls, seed=run)
            per.append(s)
        med = statistics.median(per)
        print(
            f"{label}: {1 / med:,.0f} decisions/s, {med * 1e3:.2f} ms each (median of {args.runs}); "
            f"state keeps {kept} demand entries"
        )
        if label.startswith("step reserve on"):
            on = med
    print(f"ratio on/off: {on / med:.2f}x the time per decision")


if __name__ == "__main__":
    main()
