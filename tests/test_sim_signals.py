"""Prometheus semantics of the twin's signals: histogram_quantile, rate, and the policy's observation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core.histogram import histogram_quantile as bucket_quantile
from autoscaler.core.types import DataFlag, Role
from autoscaler.sim.config import RoleShape, SimConfig
from autoscaler.sim.engine import simulate, token_gap_percentile
from autoscaler.sim.fleet import Fleet
from autoscaler.sim.policies import policy_from_string
from autoscaler.sim.signals import SignalStore, extrapolated_rate
from tests.fixtures.sim_doubles import LinearProfile, poisson_trace

INF = math.inf
LE = (0.1, 0.5, 1.0, INF)


def histogram_quantile(q: float, bounds: tuple[float, ...], cumulative: Sequence[float]) -> float:
    """The shared ``histogram_quantile`` with bounds and cumulative counts given side by side."""
    return bucket_quantile(q, zip(bounds, cumulative, strict=True))


@pytest.mark.parametrize(
    ("q", "cumulative", "expected"),
    [
        # 10 obs ≤ 0.1, 10 in (0.1, 0.5], 20 in (0.5, 1]: rank 20 → top of bucket 2
        (0.5, (10, 20, 40, 40), 0.5),
        # rank 30 → halfway through (0.5, 1]
        (0.75, (10, 20, 40, 40), 0.75),
        # rank 5 in the first bucket interpolates from 0
        (0.125, (10, 20, 40, 40), 0.05),
        # all observations in +Inf → highest finite bound
        (0.5, (0, 0, 0, 7), 1.0),
        (0.99, (10, 10, 10, 20), 1.0),
        # empty histogram → NaN
        (0.5, (0, 0, 0, 0), math.nan),
        # q outside [0, 1]
        (-0.1, (1, 2, 3, 4), -INF),
        (1.1, (1, 2, 3, 4), INF),
        # q = 0 → lower edge of the first bucket with observations... Prometheus: bucket 0, rank 0 → 0
        (0.0, (10, 20, 40, 40), 0.0),
        # rates (floats) work the same; non-monotonic input is made monotonic first
        (0.5, (0.2, 0.1, 0.4, 0.4), 0.1),
    ],
)
def test_histogram_quantile_table(q: float, cumulative: tuple[float, ...], expected: float) -> None:
    got = histogram_quantile(q, LE, cumulative)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_histogram_quantile_needs_inf_bucket_and_two_buckets() -> None:
    assert math.isnan(histogram_quantile(0.5, (0.1, 1.0), (1, 2)))
    assert math.isnan(histogram_quantile(0.5, (INF,), (5,)))


@given(st.lists(st.floats(0.001, 50.0), min_size=1, max_size=200), st.floats(0.01, 0.99))
def test_histogram_quantile_lies_in_the_bucket_of_the_true_quantile(values: list[float], q: float) -> None:
    bounds = (0.01, 0.1, 1.0, 10.0, INF)
    counts = np.cumsum([sum(1 for v in values if lo < v <= hi) for lo, hi in
                        zip((-INF, *bounds[:-1]), bounds, strict=True)])
    got = histogram_quantile(q, bounds, list(counts))
    rank = q * len(values)
    idx = int(np.searchsorted(counts, rank, side="left"))
    lo = 0.0 if idx == 0 else bounds[idx - 1]
    hi = bounds[idx] if idx < len(bounds) - 1 else bounds[-2]
    assert lo - 1e-9 <= got <= hi + 1e-9


def test_rate_of_aligned_counter_equals_slope() -> None:
    # samples at 15 s spacing inside (0, 60]: counter grows 3/s from 45 at t=15
    times = [15.0, 30.0, 45.0, 60.0]
    values = np.array([45.0, 90.0, 135.0, 180.0])
    # sampled 45 s; to start 15 s > 1.1·15? no (15 < 16.5) → extrapolate to start; to zero = 45·45/135 = 15 s
    assert float(extrapolated_rate(times, values, 0.0, 60.0)) == pytest.approx(3.0)


def test_rate_extrapolation_is_limited_near_zero_and_by_half_interval() -> None:
    times = [30.0, 45.0, 60.0]
    values = np.array([0.0, 10.0, 20.0])
    # to start 30 s ≥ 16.5 → extend by 7.5 s; to zero = 0 → extend 0: interval = 30 + 0 + 0 (end) = 30
    assert float(extrapolated_rate(times, values, 0.0, 60.0)) == pytest.approx(20.0 / 60.0)
    values2 = np.array([100.0, 110.0, 120.0])
    # not near zero: extend start by 7.5 s → 20 × 37.5 / 30 / 60
    assert float(extrapolated_rate(times, values2, 0.0, 60.0)) == pytest.approx(20 * 37.5 / 30 / 60)


def test_rate_handles_counter_reset() -> None:
    times = [15.0, 30.0, 45.0, 60.0]
    values = np.array([10.0, 20.0, 5.0, 15.0])  # reset between 30 and 45
    # increase = 15 − 10 + 20 = 25 over 45 s, extrapolated to 60 s (start gap 15 < 16.5, zero at 45·10/25=18)
    assert float(extrapolated_rate(times, values, 0.0, 60.0)) == pytest.approx(25 * 60 / 45 / 60)


def test_rate_is_vectorised_over_series() -> None:
    times = [15.0, 30.0, 45.0, 60.0]
    values = np.array([[45.0, 0.0], [90.0, 0.0], [135.0, 0.0], [180.0, 0.0]])
    got = extrapolated_rate(times, values, 0.0, 60.0)
    assert got.tolist() == pytest.approx([3.0, 0.0])


def _run_with_store(rate: float, seconds: float, replicas: int = 2):
    prof = LinearProfile()
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=replicas)})
    trace = poisson_trace(rate, seconds + 60, 800, 80, seed=5)
    fleet = Fleet(cfg, {Role.BOTH: prof}, trace.arrivals_s, trace.input_tokens, trace.output_tokens)
    for _ in range(replicas):
        fleet.add_replica(Role.BOTH, 0.0, warm=True)
    store = SignalStore(60.0, 95.0)
    t = 0.0
    while t < seconds:
        t += 15.0
        fleet.run(t)
        store.scrape(fleet, t)
    return fleet, store, t, trace


def test_observation_matches_ground_truth_within_bucket_resolution() -> None:
    fleet, store, t, _trace = _run_with_store(4.0, 600.0)
    obs = store.observe(fleet, t)
    role = obs.roles[Role.BOTH]
    assert role.replicas == 2 and role.ready == 2 and role.reporting == 2 and role.trustworthy
    # ground truth over the same window: requests whose first token fell in (t − 60, t]
    m = (fleet.first_token_t > t - 60) & (fleet.first_token_t <= t)
    true_p95 = float(np.percentile(fleet.ttft[m], 95))
    # TTFT buckets around here are 0.25/0.5/0.75: the estimate is in the truth's bucket or a neighbour
    assert role.ttft is not None and abs(role.ttft - true_p95) < 0.25
    assert role.arrival_rate == pytest.approx(m.sum() / 60.0, rel=0.25)
    assert role.generation_tokens_rate == pytest.approx(4.0 * 80, rel=0.25)
    assert role.prompt_tokens_rate == pytest.approx(4.0 * 800, rel=0.25)
    # ITL across tokens: prefill chunks stall the decoders (~6 % of gaps here), which shows at p95
    true_itl = token_gap_percentile(fleet.token_gaps, 95)
    assert role.itl is not None and abs(role.itl - true_itl) < 0.05
    assert role.queue_depth is not None and role.queue_depth >= 0
    assert role.kv_utilization is not None and 0 <= role.kv_utilization <= role.kv_utilization_max <= 1


def test_idle_fleet_reports_unknown_latency_not_zero() -> None:
    prof = LinearProfile()
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=1)})
    trace = poisson_trace(1.0, 1.0, 100, 10, seed=1)
    fleet = Fleet(cfg, {Role.BOTH: prof}, trace.arrivals_s, trace.input_tokens, trace.output_tokens)
    fleet.add_replica(Role.BOTH, 0.0, warm=True)
    store = SignalStore(60.0, 95.0)
    for k in range(1, 20):
        fleet.run(15.0 * k)
        store.scrape(fleet, 15.0 * k)
    role = store.observe(fleet, 15.0 * 19).roles[Role.BOTH]
    assert role.ttft is None and role.itl is None
    assert role.arrival_rate == 0.0 and role.queue_depth == 0.0


def test_role_without_reports_is_flagged_missing() -> None:
    prof = LinearProfile()
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=1)})
    trace = poisson_trace(1.0, 10.0, 100, 10, seed=1)
    fleet = Fleet(cfg, {Role.BOTH: prof}, trace.arrivals_s, trace.input_tokens, trace.output_tokens)
    fleet.add_replica(Role.BOTH, 0.0, warm=True)
    store = SignalStore(60.0, 95.0)  # never scraped
    role = store.observe(fleet, 15.0).roles[Role.BOTH]
    assert DataFlag.MISSING in role.flags and not role.trustworthy


def test_policy_sees_observations_not_ground_truth() -> None:
    seen = []

    class Spy:
        name = "spy"

        def initial_state(self, spec: object, now: float) -> None:
            return None

        def decide(self, spec, observation, state, now):
            seen.append(observation)
            return policy_from_string("static:1").decide(spec, observation, state, now)

    prof = LinearProfile()
    simulate(poisson_trace(2.0, 120.0, 500, 50, seed=1), prof, SimConfig(), Spy())
    assert len(seen) >= 8
    assert all(set(o.roles) == {Role.BOTH} for o in seen)
    assert seen[0].roles[Role.BOTH].ttft is None  # one scrape at 15 s: no rate yet
    assert seen[-2].roles[Role.BOTH].ttft is not None
