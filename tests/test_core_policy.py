"""Properties and table tests of the controller's ``decide``."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.core.controller_policy import SLOPolicy, SLOState
from autoscaler.core.types import DataFlag, Observation, ReasonCode, Role
from tests.strategies import TableProfile, make_spec, observation, observations, role_obs

POLICY = SLOPolicy(TableProfile())
SPEC = make_spec()
AGG = make_spec(disaggregated=False)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def warm(spec=SPEC, rate: float = 10.0, steps: int = 8) -> SLOState:  # type: ignore[no-untyped-def]
    st_ = POLICY.initial_state(spec, 0.0)
    roles = [Role.PREFILL, Role.DECODE] if spec.roles.disaggregated else [Role.BOTH]
    for k in range(steps):
        obs = observation(k * 15.0, {r: role_obs(5, rate=rate) for r in roles})
        _, st_ = POLICY.decide(spec, obs, st_, k * 15.0)
    return st_


@FAST
@given(obs=observations(), agg=st.booleans(), warm_rate=st.floats(0, 100))
def test_never_outside_bounds(obs: Observation, agg: bool, warm_rate: float) -> None:
    spec = AGG if agg else SPEC
    if agg:
        obs = Observation(obs.time, {Role.BOTH: obs.roles[Role.PREFILL]}, obs.source_ok)
    state = warm(spec, warm_rate, 3)
    decision, _ = POLICY.decide(spec, replace(obs, time=60.0), state, 60.0)
    for role, rs in spec.roles.items():
        assert rs.min_replicas <= decision.desired[Role(role)] <= rs.max_replicas


@FAST
@given(obs=observations())
def test_never_scales_down_on_untrusted_data(obs: Observation) -> None:
    state = warm(SPEC, 50.0, 3)
    decision, _ = POLICY.decide(SPEC, replace(obs, time=60.0), state, 60.0)
    for role, ro in obs.roles.items():
        clean = ro.sanitized()
        untrusted = not obs.source_ok or not clean.trustworthy or (
            clean.reporting is not None and clean.reporting < clean.ready)
        if untrusted and SPEC.fallback.policy.value == "Hold":
            rs = getattr(SPEC.roles, role.value)
            assert decision.desired[role] >= min(max(ro.replicas, rs.min_replicas), rs.max_replicas)


@FAST
@given(rate=st.floats(0.1, 60.0), extra=st.floats(0.0, 60.0), replicas=st.integers(1, 40),
       prompt=st.floats(100, 3000), output=st.floats(20, 600))
def test_monotone_in_load(rate: float, extra: float, replicas: int, prompt: float, output: float) -> None:
    def desired(r: float) -> dict[Role, int]:
        state = POLICY.initial_state(SPEC, 0.0)
        # no latencies: a fixed observed latency at a different load is a different plant (the correction
        # learns from it), so "other things equal" means the same information apart from the load
        roles = {role: role_obs(replicas, rate=r, prompt=prompt, output=output, ttft=None, itl=None)
                 for role in (Role.PREFILL, Role.DECODE)}
        obs = observation(0.0, roles)
        return dict(POLICY.decide(SPEC, obs, state, 0.0)[0].desired)

    low, high = desired(rate), desired(rate + extra)
    assert all(high[r] >= low[r] for r in low)


@FAST
@given(obs=observations(), t=st.floats(0, 1e6))
def test_deterministic(obs: Observation, t: float) -> None:
    state = warm(SPEC, 20.0, 4)
    obs = replace(obs, time=t + 100)
    a = POLICY.decide(SPEC, obs, state, t + 100)
    b = POLICY.decide(SPEC, obs, state, t + 100)
    assert a == b


def test_missing_source_holds_then_falls_back() -> None:
    spec = make_spec(extra={"fallback": {"afterFailures": 3, "policy": "Max"}})
    state = warm(spec, 10.0)
    bad = observation(200.0, {r: role_obs(5) for r in (Role.PREFILL, Role.DECODE)}, ok=False)
    for k in range(2):
        d, state = POLICY.decide(spec, replace(bad, time=200.0 + k), state, 200.0 + k)
        assert d.desired == {Role.PREFILL: 5, Role.DECODE: 5}
        assert d.reasons[0].code == ReasonCode.METRICS_UNAVAILABLE
    d, state = POLICY.decide(spec, bad, state, 210.0)
    assert d.reasons[0].code == ReasonCode.FALLBACK
    assert d.desired == {Role.PREFILL: 40, Role.DECODE: 40}
    good = observation(220.0, {r: role_obs(40) for r in (Role.PREFILL, Role.DECODE)})
    _, state = POLICY.decide(spec, good, state, 220.0)
    assert state.failures == 0


def test_stale_role_is_held_but_clean_role_scales_down() -> None:
    state = warm(SPEC, 2.0, 30)
    obs = observation(600.0, {Role.PREFILL: role_obs(30, rate=2.0, flags=frozenset({DataFlag.STALE})),
                              Role.DECODE: role_obs(30, rate=2.0)})
    d, _ = POLICY.decide(SPEC, obs, state, 600.0)
    assert d.desired[Role.PREFILL] == 30
    assert d.desired[Role.DECODE] < 30
    assert any(r.code == ReasonCode.HOLD_ON_BAD_DATA and r.role == Role.PREFILL for r in d.reasons)


def test_scale_up_on_load_with_reasons_and_predictions() -> None:
    state = warm(SPEC, 5.0)
    obs = observation(200.0, {r: role_obs(2, rate=40.0) for r in (Role.PREFILL, Role.DECODE)})
    d, _ = POLICY.decide(SPEC, obs, state, 200.0)
    assert d.desired[Role.PREFILL] > 2 and d.desired[Role.DECODE] > 2
    assert d.reasons[0].code in (ReasonCode.LOAD_SCALE_UP, ReasonCode.FORECAST_SCALE_UP, ReasonCode.SLO_SCALE_UP)
    assert d.forecast is not None and d.forecast.arrival_rate >= 40.0
    assert d.cost_per_hour == (d.desired[Role.PREFILL] + d.desired[Role.DECODE]) * 16.0


def test_budget_limited_reason() -> None:
    spec = make_spec(extra={"cost": {"pricePerGpuHour": "4.00", "budgetPerHour": "100"}})
    state = POLICY.initial_state(spec, 0.0)
    obs = observation(0.0, {r: role_obs(2, rate=40.0) for r in (Role.PREFILL, Role.DECODE)})
    d, _ = POLICY.decide(spec, obs, state, 0.0)
    assert any(r.code == ReasonCode.BUDGET_LIMITED for r in d.reasons)


def test_accelerator_mix_uses_caps() -> None:
    spec = make_spec(extra={"cost": {"accelerator": "H100", "allowedAccelerators": [
        {"name": "H100", "pricePerGpuHour": "4.00", "maxReplicas": 3},
        {"name": "A100", "pricePerGpuHour": "2.00", "profile": "slow"}]}})
    policy = SLOPolicy(TableProfile(), {"slow": TableProfile(speed=0.6, accelerator="A100")})
    obs = observation(0.0, {r: role_obs(2, rate=40.0) for r in (Role.PREFILL, Role.DECODE)})
    d, _ = policy.decide(spec, obs, policy.initial_state(spec, 0.0), 0.0)
    assert set(d.accelerators) == {Role.PREFILL, Role.DECODE}
    assert d.desired[Role.PREFILL] > 2
