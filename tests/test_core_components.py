"""Table tests for the control core's parts: forecasters, capacity, PID, HPA behaviour, optimiser, safety."""

from __future__ import annotations

import math

import pytest

from autoscaler.api.v1alpha1 import Behavior
from autoscaler.core.capacity import (
    Demand,
    decode_batch_limit,
    decode_capacity,
    predicted_itl,
    predicted_ttft,
    prefill_capacity,
    update_correction,
)
from autoscaler.core.forecast import ForecastConfig, forecast, holt_winters_run, initial_series, update
from autoscaler.core.forecast.series import HWParams
from autoscaler.core.optimize import Option, RoleNeed, solve
from autoscaler.core.pid import PIDConfig, PIDState, pid_step
from autoscaler.core.stabilize import (
    DirectionRules,
    StabilizationState,
    behavior_rules,
    rate_limit,
    record_scale,
    stabilize_recommendation,
)
from autoscaler.core.types import ReasonCode
from tests.strategies import TableProfile

# ------------------------------------------------------------------------------------------- forecasts


def seasonal(t: float, period: float = 3600.0) -> float:
    return 10.0 + 6.0 * math.sin(2 * math.pi * t / period)


def run_series(cfg: ForecastConfig, fn, until: float, step: float = 15.0):  # type: ignore[no-untyped-def]
    s = initial_series()
    t = 0.0
    while t < until:
        s = update(s, cfg, t, fn(t))
        t += step
    return s, t - step


def test_holt_winters_learns_a_seasonal_series_better_than_last_value() -> None:
    cfg = ForecastConfig(horizon_s=600.0, bucket_s=60.0, season_buckets=60, method="auto", refit_every=60)
    s, t = run_series(cfg, seasonal, 4 * 3600.0)
    assert s.season, "two seasons stored: seasonal terms initialised"
    scores = dict(zip(("last", "ewma", "holt-winters"), s.scores, strict=True))
    assert scores["holt-winters"] is not None and scores["last"] is not None
    assert scores["holt-winters"] < 0.5 * scores["last"]
    fc = forecast(s, cfg)
    assert fc is not None and fc.method == "holt-winters"
    assert fc.mean == pytest.approx(seasonal(t + 600.0), abs=1.0)
    assert fc.upper >= fc.mean


def test_one_season_of_history_is_enough_to_forecast_the_next_one() -> None:
    """A controller that has seen yesterday uses it today: seasonal terms start after one season, so
    during the second season Holt-Winters anticipates the cycle (here a sine of period 1 h)."""
    cfg = ForecastConfig(horizon_s=300.0, bucket_s=60.0, season_buckets=60, method="holt-winters", refit_every=60)
    s, _ = run_series(cfg, seasonal, 3600.0 + 60.0)
    assert not s.season  # not yet a full season folded in
    s, t = run_series(cfg, seasonal, 1.6 * 3600.0)
    assert s.season, "one season stored: seasonal terms initialised"
    fc = forecast(s, cfg)
    assert fc is not None
    # the level alone would say ~the current value; the season says where the sine will be in 5 minutes
    assert abs(fc.mean - seasonal(t + 300.0)) < 0.5 * abs(seasonal(t) - seasonal(t + 300.0))


def test_last_value_wins_on_a_random_walk_free_constant() -> None:
    cfg = ForecastConfig(horizon_s=120.0, bucket_s=60.0)
    s, _ = run_series(cfg, lambda t: 7.0, 3600.0)
    fc = forecast(s, cfg)
    assert fc is not None and fc.mean == pytest.approx(7.0, rel=1e-3)
    assert fc.upper == pytest.approx(7.0, rel=1e-2)  # no error → no band


@pytest.mark.parametrize("method", ["last", "ewma", "holt-winters", "off"])
def test_fixed_methods_are_honoured(method: str) -> None:
    cfg = ForecastConfig(horizon_s=120.0, bucket_s=60.0, method=method)
    s, _ = run_series(cfg, lambda t: 3.0 + t / 600.0, 1800.0)
    fc = forecast(s, cfg)
    assert fc is not None and fc.method == method
    if method == "holt-winters":  # a trend is extrapolated above the last value
        assert fc.mean > s.last  # type: ignore[operator]


def test_band_covers_noise_at_the_requested_quantile() -> None:
    import random

    rng = random.Random(1)
    cfg = ForecastConfig(horizon_s=60.0, bucket_s=60.0, method="ewma", quantile=0.9, max_residuals=400)
    s, _ = run_series(cfg, lambda t: 10.0 * math.exp(rng.gauss(0, 0.2)), 6 * 3600.0)
    fc = forecast(s, cfg)
    assert fc is not None
    assert 1.15 < fc.upper / fc.mean < 1.6  # ≈ exp(1.28 · 0.2 · √(1 + small)) ≈ 1.3


def test_repeated_or_nan_samples_do_not_change_state() -> None:
    cfg = ForecastConfig(horizon_s=60.0)
    s = update(initial_series(), cfg, 10.0, 5.0)
    assert update(s, cfg, 10.0, 9.0) == s
    assert update(s, cfg, 20.0, float("nan")) == s


def test_holt_winters_recursion_on_a_line_has_no_error_after_start() -> None:
    level, trend, _, sse = holt_winters_run(tuple(float(i) for i in range(20)), HWParams(0.5, 0.5, 0.0, 0.99), 0, 0)
    assert trend == pytest.approx(1.0, rel=0.05) and level == pytest.approx(19.0, rel=0.01)
    assert sse < 1.0


# -------------------------------------------------------------------------------------------- capacity

P = TableProfile()


def test_ttft_rises_with_load_and_capacity_meets_target() -> None:
    values = [predicted_ttft(P, lam, 1000.0, 0.95) for lam in (0.0, 1.0, 3.0, 5.0)]
    assert values == sorted(values)
    lam = prefill_capacity(P, 1.0, 1000.0, 0.95)
    assert 0 < lam < 1 / P.prefill_time_s(1000.0)
    assert predicted_ttft(P, lam, 1000.0, 0.95) == pytest.approx(1.0, rel=1e-3)
    # saturation is at 1/E[S] over the length distribution: twice the mean-length rate is past it
    assert predicted_ttft(P, 2.0 / P.prefill_time_s(1000.0), 1000.0, 0.95) == math.inf


def test_prefill_capacity_zero_when_target_unreachable() -> None:
    assert prefill_capacity(P, 0.05, 1000.0, 0.95) == 0.0


def test_decode_batch_limit_respects_itl_and_kv() -> None:
    b = decode_batch_limit(P, 0.1, 1100.0, 1200.0)
    assert P.decode_step_s(b, 1100.0) <= 0.1 < P.decode_step_s(b + 1, 1100.0) or b == P.max_batch_size
    small_kv = TableProfile(kv_capacity_tokens=12_000)
    assert decode_batch_limit(small_kv, 0.1, 1100.0, 1200.0) == int(12_000 * 0.9 / 1200.0)
    assert decode_batch_limit(P, 0.01, 1100.0, 1200.0) == 0


def test_decode_capacity_and_predicted_itl_agree() -> None:
    d = Demand(10.0, 10_000.0, 2_000.0)
    cap = decode_capacity(P, 0.1, d, 0.95)
    n = math.ceil(d.generation_tokens_rate / cap)
    assert predicted_itl(P, n, d, 0.95) <= 0.1 + 1e-6
    assert predicted_itl(P, n * 3, d, 0.95) < predicted_itl(P, n, d, 0.95)


def test_correction_filter_moves_towards_ratio_and_is_clamped() -> None:
    c = 1.0
    for _ in range(60):
        c = update_correction(c, 1.5, 1.0, 0.2)
    assert c == pytest.approx(1.5, rel=1e-3)
    assert update_correction(1.0, 100.0, 1.0, 1.0) == 4.0
    assert update_correction(1.2, float("nan"), 1.0) == 1.2


# ------------------------------------------------------------------------------------------------- PID


def test_pid_integrates_positive_error_and_saturates_without_windup() -> None:
    cfg = PIDConfig(kp=0.5, ki=0.01, factor_min=0.5, factor_max=2.0)
    s = PIDState()
    for k in range(2000):
        s = pid_step(cfg, s, 4.0, 1.0, k * 15.0)
    assert s.output == pytest.approx(math.log(2.0))
    assert s.integral <= math.log(2.0) + 1e-12
    # the error reverses: with anti-windup the output leaves the limit at once
    s2 = pid_step(cfg, s, 0.5, 1.0, 2000 * 15.0)
    assert s2.output < math.log(2.0) - 0.2


def test_pid_holds_integral_when_told_and_on_missing_data() -> None:
    cfg = PIDConfig(kp=0.0, ki=0.01)
    s = pid_step(cfg, PIDState(), 2.0, 1.0, 0.0)
    s = pid_step(cfg, s, 2.0, 1.0, 15.0)
    before = s.integral
    assert before > 0
    assert pid_step(cfg, s, 2.0, 1.0, 30.0, hold=True).integral == before
    assert pid_step(cfg, s, None, 1.0, 30.0).integral == before
    assert pid_step(cfg, s, float("nan"), 1.0, 30.0).integral == before


def test_pid_derivative_acts_on_measurement_not_setpoint() -> None:
    cfg = PIDConfig(kp=0.0, ki=0.0, kd=10.0, derivative_filter_s=0.0)
    s = pid_step(cfg, PIDState(), 1.0, 1.0, 0.0)
    s = pid_step(cfg, s, 1.0, 5.0, 15.0)  # setpoint jump, same measurement: no kick
    assert s.output == 0.0
    s = pid_step(cfg, s, 2.0, 5.0, 30.0)  # rising measurement: negative derivative term
    assert s.output < 0.0


# ------------------------------------------------------------------------------------------ HPA behaviour

UP, DOWN = behavior_rules(Behavior())


def test_default_behaviour_scale_up_from_docs() -> None:
    # Kubernetes docs: default scale-up allows doubling or +4 pods per 15 s, whichever is more.
    st = StabilizationState()
    assert rate_limit(st, 100, 1, 1, 1000, 0.0, UP, DOWN)[0] == 5
    assert rate_limit(st, 100, 10, 1, 1000, 0.0, UP, DOWN)[0] == 20
    st = record_scale(st, 10, 20, 0.0, 15.0)
    assert rate_limit(st, 100, 20, 1, 1000, 5.0, UP, DOWN)[0] == 20  # period starts at 10 → 20 allowed
    assert rate_limit(st, 100, 20, 1, 1000, 15.0, UP, DOWN)[0] == 40  # event aged out


def test_docs_example_scale_down_percent_policy() -> None:
    # Kubernetes docs: 10 % per minute from 80 replicas removes 8, then from 72 removes 8 more (72·0.9 → 64).
    down = DirectionRules(0.0, (("Percent", 10, 60.0), ("Pods", 5, 60.0)), "Max")
    st = StabilizationState()
    assert rate_limit(st, 10, 80, 1, 100, 0.0, UP, down)[0] == 72
    st = record_scale(st, 80, 72, 0.0, 60.0)
    assert rate_limit(st, 10, 72, 1, 100, 30.0, UP, down)[0] == 72  # same period: no more
    assert rate_limit(st, 10, 72, 1, 100, 60.0, UP, down)[0] == 64


def test_select_policy_min_and_disabled() -> None:
    down_min = DirectionRules(0.0, (("Percent", 10, 60.0), ("Pods", 5, 60.0)), "Min")
    assert rate_limit(StabilizationState(), 10, 80, 1, 100, 0.0, UP, down_min)[0] == 75
    disabled = DirectionRules(0.0, (("Pods", 5, 60.0),), "Disabled")
    got, reasons = rate_limit(StabilizationState(), 10, 80, 1, 100, 0.0, UP, disabled)
    assert got == 80 and reasons[0].code == ReasonCode.RATE_LIMITED


def test_stabilization_window_takes_max_for_scale_down() -> None:
    st = StabilizationState()
    rec, st = stabilize_recommendation(st, 10, 10, 0.0, UP, DOWN)
    rec, st = stabilize_recommendation(st, 4, 10, 60.0, UP, DOWN)
    assert rec == 10  # a 10 within the last 300 s
    rec, st = stabilize_recommendation(st, 4, 10, 301.0, UP, DOWN)
    assert rec == 4
    up = DirectionRules(120.0, UP.policies)
    rec, st = stabilize_recommendation(StabilizationState(((0.0, 3),), (), ()), 9, 3, 60.0, up, DOWN)
    assert rec == 3  # up window takes the minimum


def test_clamp_reasons() -> None:
    got, reasons = rate_limit(StabilizationState(), 50, 38, 1, 40, 0.0, UP, DOWN)
    assert got == 40 and reasons[0].code == ReasonCode.AT_MAX
    got, reasons = rate_limit(StabilizationState(), 0, 3, 2, 40, 0.0, UP, DOWN)
    assert got == 2 and reasons[0].code == ReasonCode.AT_MIN


# ------------------------------------------------------------------------------------------- optimiser


def test_closed_form_matches_milp() -> None:
    roles = [RoleNeed(10.0, 1, 50, (Option("H100", 3.0, 16.0),)), RoleNeed(1000.0, 1, 50, (Option("H100", 150.0, 16.0),))]
    fast = solve(roles)
    slow = solve(roles, caps={"H100": 1000})
    assert fast.totals() == slow.totals() == (4, 7)
    assert fast.cost_per_hour == pytest.approx(11 * 16.0)


def test_mix_respects_availability_caps() -> None:
    h100, a100 = Option("H100", 4.0, 16.0), Option("A100", 2.0, 10.0)
    roles = [RoleNeed(20.0, 0, 100, (h100, a100))]
    assert solve(roles, caps={}, budget=1000.0).counts == ((5, 0),)  # cheapest per unit: H100 (4/unit)
    plan = solve(roles, caps={"H100": 3})
    assert plan.counts == ((3, 4),) and not plan.limited


def test_budget_limited_best_effort() -> None:
    roles = [RoleNeed(20.0, 1, 100, (Option("H100", 4.0, 16.0),))]
    plan = solve(roles, budget=48.0)
    assert plan.budget_limited and plan.limited
    assert plan.totals() == (3,) and plan.served == pytest.approx(12.0 / 20.0)
    ok = solve(roles, budget=80.0)
    assert not ok.limited and ok.totals() == (5,)


def test_bounds_limited_is_not_budget_limited() -> None:
    roles = [RoleNeed(200.0, 1, 10, (Option("H100", 4.0, 16.0),))]
    plan = solve(roles, budget=10_000.0)
    assert plan.limited and not plan.budget_limited and plan.totals() == (10,)


def test_pooled_prefill_queue_has_economy_of_scale_and_sizing_is_tight() -> None:
    from autoscaler.core.capacity import ModelParams, erlang_c, prefill_replicas, ttft_quantile

    pooled = ModelParams(pooled=True)
    # Erlang C: known value (2 servers, 1 erlang → 1/3) and the limits
    assert erlang_c(2, 1.0) == pytest.approx(1.0 / 3.0)
    assert erlang_c(4, 0.0) == 0.0 and erlang_c(3, 3.0) == 1.0
    per = 3.0  # requests/s per replica
    t4 = ttft_quantile(P, 4, 4 * per, 1000.0, 0.95, pooled)
    t16 = ttft_quantile(P, 16, 16 * per, 1000.0, 0.95, pooled)
    assert t16 < t4  # the same per-replica load queues less on a bigger pooled fleet
    n = prefill_replicas(P, 1.0, 40.0, 1000.0, 0.95, pooled)
    assert (
        ttft_quantile(P, int(n), 40.0, 1000.0, 0.95, pooled)
        <= 1.0
        < ttft_quantile(P, int(n) - 1, 40.0, 1000.0, 0.95, pooled)
    )
    # a target below what an idle replica achieves: bounded (almost nobody waits), not infinite
    floor = ttft_quantile(P, 1, 0.0, 1000.0, 0.95, pooled)
    tight = prefill_replicas(P, floor * 0.9, 40.0, 1000.0, 0.95, pooled)
    assert n <= tight < math.inf


def test_per_replica_model_sizes_a_target_below_the_floor_as_floor_plus_slack() -> None:
    """Independent M/G/1 queues: a replica waits with probability ρ, so "almost nobody waits" would need
    ρ → 0 (a 200× fleet); a target at or below the no-wait floor is sized for (1 + slack) × floor instead."""
    from autoscaler.core.capacity import ModelParams, no_wait_ttft, prefill_replicas, ttft_quantile

    params = ModelParams()  # per-replica queues: the default
    assert not params.pooled
    floor = no_wait_ttft(P, 1000.0, 0.95, params)
    n_floor = prefill_replicas(P, floor * 0.5, 40.0, 1000.0, 0.95, params)
    n_slack = prefill_replicas(P, floor * (1 + params.floor_slack), 40.0, 1000.0, 0.95, params)
    assert n_floor == n_slack < math.inf
    offered = 40.0 * P.prefill_time_s(1000.0)
    assert n_floor < 10 * offered  # a fleet, not ρ ≤ 0.5 %
    goal = floor * (1 + params.floor_slack)
    assert ttft_quantile(P, int(n_floor), 40.0, 1000.0, 0.95, params) <= goal
    assert ttft_quantile(P, int(n_floor) - 1, 40.0, 1000.0, 0.95, params) > goal


@pytest.mark.parametrize("target", [0.6, 1.0, 2.0])
def test_budgeted_ttft_spends_a_share_of_the_waiting_budget(target: float) -> None:
    from autoscaler.core.capacity import ModelParams, budgeted_ttft, no_wait_ttft

    params = ModelParams()
    floor = no_wait_ttft(P, 1000.0, 0.95, params)
    goals = [budgeted_ttft(P, target, h, 1000.0, 0.95, params) for h in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert goals == sorted(goals)  # more headroom, a looser goal
    assert all(g >= (1 + params.floor_slack) * floor - 1e-12 for g in goals)
    if target > (1 + params.floor_slack) * floor:
        assert goals[3] == pytest.approx(target)  # headroom 1: the target itself
        assert goals[2] == pytest.approx(max((1 + params.floor_slack) * floor, floor + 0.5 * (target - floor)))


