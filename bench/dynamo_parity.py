"""Our re-statement of Dynamo's planner (``dynamo``, autoscaler/core/baselines/dynamo.py) against the real one
(``dynamo-planner``, the peers environment) on the same inputs.

The real planner drives the twin; at every control step both policies see the same observation, and ours
decides from it with its own state. Printed per scenario: the planner's throughput decisions (every 180 s), how
many of ours agree (same prefill and decode targets), and the first disagreements.

    PYTHONPATH=. .venv/bin/python bench/dynamo_parity.py [--predictor constant|arima] [--quick]
"""

from __future__ import annotations

import argparse
from typing import Any

from autoscaler.catalog import load_profile
from autoscaler.core.baselines import DynamoPlannerPolicy
from autoscaler.core.types import Role
from autoscaler.sim import scorecard as sc
from autoscaler.sim.engine import simulate
from autoscaler.sim.peers.dynamo_planner import DynamoPlannerPeer


class Shadow:
    """The real planner deciding, ours deciding in its shadow on the same observations."""

    name = "dynamo-planner"

    def __init__(self, real: DynamoPlannerPeer, ours: DynamoPlannerPolicy) -> None:
        self.real, self.ours = real, ours
        self.rows: list[tuple[float, dict[Role, int], dict[Role, int], str]] = []

    def initial_state(self, spec: Any, now: float) -> Any:
        return self.real.initial_state(spec, now), self.ours.initial_state(spec, now)

    def decide(self, spec: Any, obs: Any, state: Any, now: float) -> Any:
        rs, os_ = state
        rd, rs = self.real.decide(spec, obs, rs, now)
        od, os_ = self.ours.decide(spec, obs, os_, now)
        if not od.reasons or od.reasons[0].message != "within the planner interval":
            self.rows.append((now, dict(rd.desired), dict(od.desired), rd.reasons[0].message))
        return rd, (rs, os_)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--predictor", default="constant")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    profile = load_profile("llama2-70b/h100/tp4")
    for s in sc.default_scenarios(args.quick):
        trace = sc._load(s, 0)
        spec = sc.build_spec(profile, season_s=s.season_s, ttft=f"{s.ttft_s * 1000:g}ms", itl=f"{s.itl_s * 1000:g}ms")
        start = sc.start_fleet(s, 0, trace, profile, spec)
        config = sc.bench_config(spec, start, score_from_s=max(sc.warmup_s(profile, spec), s.history_s))
        ours = DynamoPlannerPolicy(profile, "kalman" if args.predictor == "kalman" else "constant", 1.0)
        shadow = Shadow(DynamoPlannerPeer(profile, 1.0, args.predictor), ours)
        try:
            simulate(trace, profile, config, shadow, spec)
        finally:
            shadow.real.close()
        agree = [r for r in shadow.rows if r[1] == r[2]]
        print(f"{s.name}: predictor {args.predictor}: {len(agree)} of {len(shadow.rows)} decisions agree")
        for t, real, mine, why in [r for r in shadow.rows if r[1] != r[2]][:6]:
            fmt = lambda d: "/".join(str(d.get(x)) for x in (Role.PREFILL, Role.DECODE))  # noqa: E731
            print(f"  t={t - config.start_time_s:.0f}s real {fmt(real)} ours {fmt(mine)}  [{why[:150]}]")


if __name__ == "__main__":
    main()
