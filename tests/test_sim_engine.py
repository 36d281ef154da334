"""The engine: determinism, policies in the loop, summary figures, policy parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.core.baselines import HPAPolicy
from autoscaler.core.types import Observation, Role, RoleObservation
from autoscaler.errors import InputError
from autoscaler.sim.config import Mode, RoleShape, SimConfig
from autoscaler.sim.engine import Simulation, simulate
from autoscaler.sim.policies import StaticPolicy, policy_from_string
from tests.fixtures.sim_doubles import LinearProfile, make_trace, poisson_trace

CFG = SimConfig(roles={Role.BOTH: RoleShape(initial=2, min_replicas=1, max_replicas=20)})


def test_same_seed_gives_byte_identical_json() -> None:
    prof = LinearProfile()
    a = simulate(poisson_trace(3.0, 600, 700, 90, seed=7), prof, CFG, policy_from_string("reactive"), seed=1)
    b = simulate(poisson_trace(3.0, 600, 700, 90, seed=7), prof, CFG, policy_from_string("reactive"), seed=1)
    assert a.to_json(include_requests=True) == b.to_json(include_requests=True)


def test_different_seeds_give_different_results() -> None:
    prof = LinearProfile()
    a = simulate(poisson_trace(3.0, 600, 700, 90, seed=7), prof, CFG, policy_from_string("static:2"))
    b = simulate(poisson_trace(3.0, 600, 700, 90, seed=8), prof, CFG, policy_from_string("static:2"))
    assert a.to_json() != b.to_json()
    # the engine's own seed drives router tie-breaks between equally loaded replicas
    burst = make_trace([float(i // 4) for i in range(400)], [100 + 37 * (i % 11) for i in range(400)], 30)
    c = simulate(burst, prof, CFG, policy_from_string("static:2"), seed=1)
    d = simulate(burst, prof, CFG, policy_from_string("static:2"), seed=2)
    assert not np.array_equal(c.ttft, d.ttft)


def test_summary_figures_are_consistent() -> None:
    prof = LinearProfile()
    res = simulate(poisson_trace(2.0, 300, 600, 60, seed=3), prof, CFG, policy_from_string("static:2"))
    s = res.summary
    assert s["requests"] == res.ttft.size and s["failed"] == 0
    both = np.mean((res.ttft <= 1.0) & (res.itl <= 0.1))
    assert s["slo_attainment"]["both"] == pytest.approx(both)
    assert s["slo_attainment"]["both"] <= min(s["slo_attainment"]["ttft"], s["slo_attainment"]["itl"])
    assert s["ttft_s"]["p50"] <= s["ttft_s"]["p95"] <= s["ttft_s"]["p99"]
    assert s["ttft_s"]["p95"] == pytest.approx(float(np.percentile(res.ttft, 95)))
    hours = 2 * prof.gpus_per_replica * s["duration_s"] / 3600
    assert s["gpu_hours"]["total"] == pytest.approx(hours)
    assert s["cost_usd"] == pytest.approx(hours * prof.price_per_gpu_hour)
    assert s["scaling_actions"] == 0
    ts = res.timeseries
    assert len(ts["t"]) == len(ts["replicas.both"]) == len(ts["true_ttft"]) == len(ts["observed_ttft"])
    assert sum(r * 15 for r in ts["arrival_rate"] if r is not None) == pytest.approx(s["requests"])


def test_scored_window_bills_and_counts_only_after_score_from() -> None:
    """``score_from_s`` leaves a warm-up out: GPU-hours of a fixed fleet scale with the scored duration, and
    the scaling actions before the cut are not counted."""
    prof = LinearProfile(cold_start_s=30.0, max_batch_size=16)
    rng = np.random.default_rng(1)
    parts, t0 = [], 0.0
    for rate, dur in ((1.0, 300), (6.0, 600)):
        t = t0 + np.cumsum(rng.exponential(1 / rate, int(rate * dur * 1.3)))
        parts.append(t[t < t0 + dur])
        t0 += dur
    trace = make_trace(list(np.concatenate(parts)), 500, 200)
    static = simulate(trace, prof, replace_cfg(CFG, score_from_s=300.0), policy_from_string("static:2"))
    scored = static.summary["scored"]
    assert scored["from_s"] == 300.0
    assert scored["duration_s"] == pytest.approx(static.summary["duration_s"] - 300.0)
    assert scored["gpu_hours"] == pytest.approx(2 * prof.gpus_per_replica * scored["duration_s"] / 3600)
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=1, min_replicas=1, max_replicas=20)}, score_from_s=450.0)
    reactive = simulate(trace, prof, cfg, policy_from_string("reactive:target=2"))
    total, late = reactive.summary["scaling_actions"], reactive.summary["scored"]["scaling_actions"]
    assert 0 <= late <= total
    assert reactive.summary["scored"]["gpu_hours"] < reactive.summary["gpu_hours"]["total"]


def replace_cfg(cfg: SimConfig, **changes: object) -> SimConfig:
    import dataclasses

    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


def test_reactive_policy_scales_up_under_overload_and_back_down() -> None:
    prof = LinearProfile(cold_start_s=30.0, max_batch_size=16)
    # 10 minutes quiet, 10 minutes at 6×, 15 minutes quiet
    rng = np.random.default_rng(0)
    parts, t0 = [], 0.0
    for rate, dur in ((1.0, 600), (6.0, 600), (1.0, 900)):
        t = t0 + np.cumsum(rng.exponential(1 / rate, int(rate * dur * 1.3)))
        parts.append(t[t < t0 + dur])
        t0 += dur
    trace = make_trace(list(np.concatenate(parts)), 500, 200)
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=1, min_replicas=1, max_replicas=20)})
    res = simulate(trace, prof, cfg, policy_from_string("reactive:target=2"))
    reps = np.asarray(res.timeseries["replicas.both"])
    t = np.asarray(res.timeseries["t"])
    assert reps[(t > 700) & (t < 1200)].max() > 2
    assert reps[-1] < reps.max()
    assert res.summary["scaling_actions"] >= 2
    assert res.summary["replicas_requested"] > 1


def test_clamps_policy_to_configured_bounds() -> None:
    prof = LinearProfile()
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=1, min_replicas=1, max_replicas=3)})
    res = simulate(poisson_trace(1.0, 60, 100, 10, seed=1), prof, cfg, policy_from_string("static:10"))
    assert max(res.timeseries["replicas.both"]) == 3


def test_disaggregated_run_reports_both_roles() -> None:
    prof = LinearProfile()
    cfg = SimConfig(mode=Mode.DISAGGREGATED,
                    roles={Role.PREFILL: RoleShape(initial=1), Role.DECODE: RoleShape(initial=2)})
    res = simulate(poisson_trace(2.0, 300, 1500, 100, seed=2), prof, cfg,
                   policy_from_string("static:prefill=1,decode=2"))
    assert res.summary["failed"] == 0
    assert res.summary["gpu_hours"]["prefill"] * 2 == pytest.approx(res.summary["gpu_hours"]["decode"])
    assert any(x is not None for x in res.timeseries["observed_ttft"])
    assert any(x is not None for x in res.timeseries["observed_itl"])


def test_steppable_simulation_matches_one_shot() -> None:
    prof = LinearProfile()
    trace = poisson_trace(2.0, 300, 600, 60, seed=3)
    sim = Simulation(trace, prof, CFG, policy_from_string("reactive"))
    for t in np.arange(7.0, 2000.0, 7.0):
        sim.advance(float(t))
    whole = simulate(trace, prof, CFG, policy_from_string("reactive"))
    assert sim.finished
    assert sim.result().to_json() == whole.to_json()


def test_tail_limit_fails_requests_that_never_finish() -> None:
    prof = LinearProfile(max_batch_size=1)
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=1)}, tail_limit_s=30.0)
    res = simulate(make_trace([0.0, 0.0, 0.0], 100, 5000), prof, cfg, policy_from_string("static:1"))
    assert res.summary["failed"] >= 2
    assert math.isinf(res.summary["ttft_s"]["p99"]) or res.summary["ttft_s"]["p99"] is None or (
        res.summary["slo_attainment"]["both"] < 0.5
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("magic", "unknown policy 'magic'"),
        ("static", "expected static:N"),
        ("static:x", "non-negative integer"),
        ("static:gpu=3", "unknown role 'gpu'"),
        ("static:prefill=1,prefill=2", "given twice"),
        ("reactive:target", "expected key=value"),
        ("reactive:target=-1", "non-negative number"),
        ("reactive:target=0", "target must be > 0"),
        ("reactive:speed=2", "unknown option"),
        ("reactive:target=2,window=60", "takes only target"),
    ],
)
def test_policy_string_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        policy_from_string(text)
    assert info.value.source == "--policy"


def test_policy_strings_parse() -> None:
    assert policy_from_string("static:8") == StaticPolicy(all_roles=8, name="static:8")
    p = policy_from_string("static:prefill=4,decode=8")
    assert isinstance(p, StaticPolicy) and p.per_role == {Role.PREFILL: 4, Role.DECODE: 8}
    # the deprecated ``reactive`` is the queue HPA, on the twin's replica bounds
    r = policy_from_string("reactive:target=2")
    assert isinstance(r, HPAPolicy) and (r.metric, r.target, r.name) == ("queue", 2.0, "reactive:target=2")


def _obs(queue: float | None, ready: int, replicas: int) -> Observation:
    return Observation(time=0.0, roles={Role.BOTH: RoleObservation(replicas=replicas, ready=ready,
                                                                    queue_depth=queue, running=1.0)})


@pytest.mark.parametrize(
    ("queue", "ready", "replicas", "expected"),
    [
        (8.0, 2, 2, 2),  # 4 per replica = target
        (8.4, 2, 2, 2),  # within 10 %
        (16.0, 2, 2, 4),  # ratio 2
        (0.0, 4, 4, 4),  # empty: the first sync keeps the 4 it found for the 300 s down window
        (None, 2, 2, 2),  # unknown: hold
    ],
)
def test_reactive_rule_table(queue: float | None, ready: int, replicas: int, expected: int) -> None:
    pol = policy_from_string("reactive:target=4")
    decision, _ = pol.decide(CFG, _obs(queue, ready, replicas), pol.initial_state(CFG, 0.0), 0.0)
    assert decision.desired[Role.BOTH] == expected


def test_reactive_scale_down_is_stabilised_over_the_window() -> None:
    pol = policy_from_string("reactive:target=4")
    state = pol.initial_state(CFG, 0.0)
    d, state = pol.decide(CFG, _obs(32.0, 4, 4), state, 0.0)
    assert d.desired[Role.BOTH] == 8
    d, state = pol.decide(CFG, _obs(0.0, 8, 8), state, 100.0)
    assert d.desired[Role.BOTH] == 8  # the recommendation of 8 at t=0 is still in the 300 s window
    d, state = pol.decide(CFG, _obs(0.0, 8, 8), state, 301.0)
    assert d.desired[Role.BOTH] == 1
