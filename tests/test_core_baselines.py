"""Table tests of the baselines against the behaviour their sources document."""

from __future__ import annotations

import pytest

from autoscaler.core.baselines import (
    HPAPolicy,
    KEDAPolicy,
    KPAPolicy,
    LLMDPolicy,
    StaticPolicy,
)
from autoscaler.core.baselines.hpa import (
    external_per_pod_replicas,
    external_value_replicas,
    pods_metric_replicas,
)
from autoscaler.core.types import DataFlag, Observation, Role, RoleObservation
from tests.strategies import make_spec, role_obs

SPEC = make_spec()


def obs(t: float, **kw: object) -> Observation:
    return Observation(t, {Role.PREFILL: role_obs(**kw), Role.DECODE: role_obs(**kw)})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "with_metrics", "missing", "total", "target", "expected"),
    [
        (4, 4, 0, 40.0, 5.0, 8),  # ratio 2 → double
        (4, 4, 0, 21.0, 5.0, 4),  # ratio 1.05 within tolerance
        (10, 10, 0, 10.0, 5.0, 2),  # ratio 0.2 → ceil(0.2 · 10)
        (6, 4, 2, 40.0, 5.0, 12),  # scale-up: missing pods count 0 → ratio 40/6/5 → ceil(1.33·6) = 8? see below
        (6, 4, 2, 4.0, 5.0, 4),  # scale-down: missing count at target: (4+10)/6/5 = 0.47 → ceil(2.8) = 3 → 3?
        (6, 4, 2, 18.0, 5.0, 6),  # ratio 0.9 → with missing at target → 0.93 within tolerance → no change
        (4, 0, 4, 0.0, 5.0, 4),  # no metrics at all → no change
    ],
)
def test_pods_metric_replica_calculator(current: int, with_metrics: int, missing: int, total: float,
                                        target: float, expected: int) -> None:
    # recompute the two rows with missing pods from replica_calculator.go's arithmetic
    if (current, total) == (6, 40.0):
        expected = 8  # new ratio = 40 / 6 / 5 = 1.333 → ceil(1.333 · 6) = 8
    if (current, total) == (6, 4.0):
        expected = 3  # new ratio = (4 + 2·5) / 6 / 5 = 0.467 → ceil(2.8) = 3
    assert pods_metric_replicas(current, with_metrics, missing, total, target) == expected


def test_missing_pods_flip_direction_means_no_change() -> None:
    # r = 6/1/5 = 1.2 (scale-up) but with 3 missing pods at 0 → 6/4/5 = 0.3: direction flips → keep
    assert pods_metric_replicas(4, 1, 3, 6.0, 5.0) == 4


def test_external_targets() -> None:
    assert external_per_pod_replicas(3, 30.0, 5.0) == 6
    assert external_per_pod_replicas(6, 31.0, 5.0) == 6  # within tolerance
    assert external_per_pod_replicas(6, 0.0, 5.0) == 0
    assert external_value_replicas(4, 4, 1.5, 1.0) == 6
    assert external_value_replicas(4, 4, 1.05, 1.0) == 4


def test_hpa_syncs_every_15s_and_keeps_scale_down_window() -> None:
    hpa = HPAPolicy("queue", 5.0)
    st = hpa.initial_state(SPEC, 0.0)
    busy = Observation(0.0, {r: RoleObservation(replicas=4, ready=4, reporting=4, queue_depth=20.0)
                             for r in (Role.PREFILL, Role.DECODE)})
    d, st = hpa.decide(SPEC, busy, st, 0.0)  # 5 per pod = target → 4 recommended
    assert d.desired[Role.PREFILL] == 4
    d, st = hpa.decide(SPEC, obs(5.0, replicas=4), st, 5.0)  # between syncs
    assert d.desired[Role.PREFILL] == 4
    for t in range(15, 300, 15):  # queue 1 per role → ratio 0.05 → 1, held by the 300 s window
        d, st = hpa.decide(SPEC, obs(float(t), replicas=4), st, float(t))
        assert d.desired[Role.PREFILL] == 4
    d, st = hpa.decide(SPEC, obs(300.0, replicas=4), st, 300.0)
    assert d.desired[Role.PREFILL] == 1


def test_hpa_no_metric_no_scaling() -> None:
    hpa = HPAPolicy("kv", 0.7)
    o = Observation(0.0, {r: RoleObservation(replicas=5, ready=5) for r in (Role.PREFILL, Role.DECODE)})
    d, _ = hpa.decide(SPEC, o, hpa.initial_state(SPEC, 0.0), 0.0)
    assert d.desired == {Role.PREFILL: 5, Role.DECODE: 5}


def test_keda_empty_result_is_zero_and_polls_every_30s() -> None:
    keda = KEDAPolicy(5.0)
    empty = Observation(0.0, {r: RoleObservation(replicas=6, ready=6, flags=frozenset({DataFlag.MISSING}))
                              for r in (Role.PREFILL, Role.DECODE)})
    st = keda.initial_state(SPEC, 0.0)
    d, st = keda.decide(SPEC, empty, st, 0.0)
    # empty → 0 → ceil(0/5) = 0, but the first sync records the 6 it found (recordInitialRecommendation) and
    # the 300 s scale-down window holds the maximum of it
    assert d.desired[Role.PREFILL] == 6
    busy = Observation(15.0, {r: RoleObservation(replicas=6, ready=6, queue_depth=100.0)
                              for r in (Role.PREFILL, Role.DECODE)})
    d, st = keda.decide(SPEC, busy, st, 15.0)
    assert d.desired[Role.PREFILL] == 6  # cached poll (0) still used 15 s later
    d, st = keda.decide(SPEC, busy, st, 30.0)
    assert d.desired[Role.PREFILL] == 12  # ceil(100/5) = 20, limited by the default up policy (100 % of 6)


def test_llmd_scales_by_ratio() -> None:
    llmd = LLMDPolicy(1.0)
    o = obs(0.0, replicas=4, ttft=1.5, itl=0.05)
    st = llmd.initial_state(SPEC, 0.0)
    d, st = llmd.decide(SPEC, o, st, 0.0)
    assert d.desired == {Role.PREFILL: 6, Role.DECODE: 6}  # s = 1.5 on both roles
    o = obs(15.0, replicas=6, ttft=9.0, itl=0.05)
    d, st = llmd.decide(SPEC, o, st, 15.0)
    assert d.desired[Role.PREFILL] == 11  # avg(1.5, 2.0 clamped) = 1.75 → ceil(6 · 1.75) = 11


def test_kpa_panics_and_never_scales_down_in_panic() -> None:
    kpa = KPAPolicy(target=10.0)
    st = kpa.initial_state(SPEC, 0.0)
    calm = Observation(0.0, {r: RoleObservation(replicas=4, ready=4, running=40.0, queue_depth=0.0)
                             for r in (Role.PREFILL, Role.DECODE)})
    d, st = kpa.decide(SPEC, calm, st, 0.0)
    assert d.desired[Role.DECODE] == 4
    burst = Observation(15.0, {r: RoleObservation(replicas=4, ready=4, running=40.0, queue_depth=200.0)
                               for r in (Role.PREFILL, Role.DECODE)})
    d, st = kpa.decide(SPEC, burst, st, 15.0)
    assert st.roles[Role.DECODE].panic_since == 15.0
    assert d.desired[Role.DECODE] == 8  # panic avg (40+240)/2 = 140 → 14, bounded by 2 N = 8
    d, st = kpa.decide(SPEC, calm, st, 30.0)
    assert d.desired[Role.DECODE] >= 4


def test_static() -> None:
    s = StaticPolicy({Role.PREFILL: 3, Role.DECODE: 100})
    d, _ = s.decide(SPEC, obs(0.0, replicas=1), None, 0.0)
    assert d.desired == {Role.PREFILL: 3, Role.DECODE: 40}


@pytest.mark.parametrize(("t", "want"), [(0.0, 6), (15.0, 6), (285.0, 6), (300.0, 1), (315.0, 1)])
def test_a_new_hpa_keeps_the_fleet_it_found_for_the_scale_down_window(t: float, want: int) -> None:
    """Upstream's recordInitialRecommendation: an idle fleet of 6 found by a new HPA (default behaviour: 300 s
    down window, 100 %/15 s) is held until the first sync's recommendation leaves the window, then cut."""
    hpa = HPAPolicy("queue", 5.0)
    st = hpa.initial_state(SPEC, 0.0)
    replicas = 6
    d = None
    for k in range(int(t // 15) + 1):
        now = 15.0 * k
        idle = Observation(now, {r: RoleObservation(replicas=replicas, ready=replicas, reporting=replicas,
                                                    queue_depth=0.0) for r in (Role.PREFILL, Role.DECODE)})
        d, st = hpa.decide(SPEC, idle, st, now)
        replicas = d.desired[Role.PREFILL]
    assert d is not None and d.desired[Role.PREFILL] == want


def test_a_delayed_metric_is_read_as_it_was_delay_seconds_ago() -> None:
    """``metric_delay_s`` 15: the HPA acts on the queue of the sync before (the controller's last observation,
    through the external metrics API); until a reading is that old it does not scale."""
    hpa = HPAPolicy("queue", 5.0, metric_delay_s=15.0)
    st = hpa.initial_state(SPEC, 0.0)
    seen = []
    replicas = 2
    for k, queue in enumerate((10.0, 40.0, 40.0, 40.0)):
        now = 15.0 * k
        o = Observation(now, {r: RoleObservation(replicas=replicas, ready=replicas, reporting=replicas,
                                                 queue_depth=queue) for r in (Role.PREFILL, Role.DECODE)})
        d, st = hpa.decide(SPEC, o, st, now)
        replicas = d.desired[Role.PREFILL]
        seen.append(replicas)
    # t=0: no reading 15 s old → hold 2; t=15 reads 10 → ceil(10/5) = 2; t=30 reads 40 → 8, limited to
    # max(100 %, 4 pods) per 15 s = 6; t=45 reads 40 → 8
    assert seen == [2, 2, 6, 8]
    assert len(st.readings) <= 2
