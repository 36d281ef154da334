"""Properties and table tests of the controller's ``decide``."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.core.slo import SLOPolicy, SLOState
from autoscaler.core.types import DataFlag, Observation, ReasonCode, Role, RoleObservation
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


# --------------------------------------------------------------------------- demand, backlog and congestion


def _run(steps: list[tuple[float, dict[Role, RoleObservation]]], spec=SPEC):  # type: ignore[no-untyped-def]
    """Feed ``(time, roles)`` observations in order; returns the last decision and state."""
    state = POLICY.initial_state(spec, 0.0)
    decision = None
    for t, roles in steps:
        decision, state = POLICY.decide(spec, observation(t, roles), state, t)
    assert decision is not None
    return decision, state


def test_a_dip_shorter_than_a_lead_time_does_not_release_what_the_peak_needs() -> None:
    """Load at 40 req/s for three minutes, then 10 req/s for 30 s: the peak of the last lead time still
    sizes the fleet (a replica released now would serve again only a lead time after it is asked for)."""
    steady = [(k * 15.0, {r: role_obs(10, rate=40.0, ttft=None, itl=None) for r in (Role.PREFILL, Role.DECODE)})
              for k in range(12)]
    at_peak, _ = _run(steady)
    dip = [(180.0 + k * 15.0, {r: role_obs(at_peak.desired[r], rate=10.0, ttft=None, itl=None)
                               for r in (Role.PREFILL, Role.DECODE)}) for k in range(2)]
    after, _ = _run(steady + dip)
    assert after.desired[Role.PREFILL] >= at_peak.desired[Role.PREFILL]


def test_a_long_decode_queue_is_drained_over_the_lead_time_not_given_a_slot_each() -> None:
    """4,600 sequences waiting for decode: the decode fleet grows by what drains them within a lead time,
    not by 4,600 / m* replicas (which asked for ×50 during a burst)."""
    def roles(waiting: float) -> dict[Role, RoleObservation]:
        dec = replace(role_obs(15, rate=85.0, prompt=1200.0, output=230.0, ttft=None, itl=0.07),
                      queue_depth=waiting, running=960.0)
        pre = role_obs(20, rate=85.0, prompt=1200.0, output=230.0, ttft=None, itl=None)
        return {Role.PREFILL: pre, Role.DECODE: dec}

    calm, _ = _run([(k * 15.0, roles(2.0)) for k in range(10)])
    queued, _ = _run([(k * 15.0, roles(2.0)) for k in range(9)] + [(135.0, roles(4600.0))])
    grown = queued.desired[Role.DECODE] - calm.desired[Role.DECODE]
    assert 0 < grown <= 20  # 4,600 × 230 tokens over a 75 s lead time: tens of thousands of tokens/s at most
    assert queued.desired[Role.DECODE] < SPEC.roles.decode.max_replicas  # type: ignore[union-attr]


def test_ttft_caused_by_decode_congestion_does_not_grow_prefill() -> None:
    """TTFT forty times its target while decode has thousands waiting: decode's problem. Prefill's PID
    ignores the TTFT, so prefill stays where its load puts it."""
    def roles(ttft: float | None, waiting: float) -> dict[Role, RoleObservation]:
        pre = role_obs(12, rate=40.0, ttft=ttft, itl=None)
        dec = replace(role_obs(6, rate=40.0, ttft=None, itl=0.07), queue_depth=waiting, running=380.0)
        return {Role.PREFILL: pre, Role.DECODE: dec}

    calm, _ = _run([(k * 15.0, roles(0.5, 0.0)) for k in range(8)])
    jam, _ = _run([(k * 15.0, roles(0.5, 0.0)) for k in range(8)]
                  + [(120.0 + k * 15.0, roles(40.0, 3000.0)) for k in range(4)])
    assert jam.desired[Role.PREFILL] <= calm.desired[Role.PREFILL]
    assert jam.desired[Role.DECODE] > calm.desired[Role.DECODE]


def test_rise_is_the_quantile_of_climbs_within_one_lead_time() -> None:
    from autoscaler.core.slo.demand import rise as _rise

    # a sawtooth: 10 req/s, jumping to 40 every 60 s for one sample
    samples = tuple((t, 40.0 if t % 60 == 0 else 10.0, 0.0, 0.0) for t in range(0, 600, 15))
    climbs = _rise(samples, lambda r: r[1], 30.0, 0.9)
    assert climbs == 30.0  # within 30 s of most samples the load climbs by 30 req/s somewhere
    flat = tuple((float(t), 10.0, 0.0, 0.0) for t in range(0, 600, 15))
    assert _rise(flat, lambda r: r[1], 30.0, 0.9) == 0.0
    assert _rise(flat[:3], lambda r: r[1], 30.0, 0.9) == 0.0  # too few to judge


def test_the_climb_of_rates_during_the_first_metrics_window_is_not_a_rise_of_demand() -> None:
    """Rates whose window reaches back before the first scrape are extrapolated from part of it and read
    low; their climb to the true level in the first window is not learned as a climb of demand. Without
    that, a fleet started against a steady 40 req/s would carry a rise band of 30 req/s for ten lead times."""
    def roles(rate: float) -> dict[Role, RoleObservation]:
        return {r: role_obs(10, rate=rate, ttft=None, itl=None) for r in (Role.PREFILL, Role.DECODE)}

    steady, _ = _run([(k * 15.0, roles(40.0)) for k in range(40)])
    filling = [10.0, 20.0, 30.0, 40.0]  # one 60-s window filling at 15-s scrapes
    started, state = _run([(k * 15.0, roles(filling[k] if k < 4 else 40.0)) for k in range(40)])
    assert started.desired == steady.desired
    assert min(r[1] for r in state.recent) == 40.0
    # the same climb after the first window is a rise of demand and is provisioned for
    later, _ = _run([(k * 15.0, roles(10.0 if k < 8 else 10.0 + min(30.0, 10.0 * (k - 7)))) for k in range(40)])
    assert later.desired[Role.PREFILL] > steady.desired[Role.PREFILL]


def test_decode_keeps_a_reserve_for_the_largest_surge_it_has_seen_until_the_step_window_passes() -> None:
    """Output tokens/s doubling within a lead time (a surge of long generations) is remembered: decode keeps
    that much in reserve for ``decode_step_window_leads`` lead times after the surge has gone — a
    sequence that finds no decode slot waits, and that wait is TTFT. The reserve is a forecast: off with
    forecasting off, and gone once the surge is older than the window."""
    from autoscaler.core.slo import ReserveTuning, Tuning, forecast_config

    lead = forecast_config(SPEC, TableProfile(), Tuning()).horizon_s
    interval = SPEC.control_interval_s

    def roles(output: float, decode: int) -> dict[Role, RoleObservation]:
        return {
            Role.PREFILL: role_obs(10, rate=40.0, ttft=None, itl=None),
            Role.DECODE: role_obs(decode, rate=40.0, output=output, ttft=None, itl=None),
        }

    burst = 20  # two scrapes at twice the output length

    def decide_after(  # type: ignore[no-untyped-def]
        leads: float, spec=SPEC, surge: bool = True, tuning: Tuning | None = None, decode: int = 10
    ):
        steps = burst + int(leads * lead / interval)
        out = [400.0 if surge and burst <= k < burst + 2 else 200.0 for k in range(steps)]
        policy = SLOPolicy(TableProfile(), tuning=tuning)
        state = policy.initial_state(spec, 0.0)
        decision = None
        for k in range(steps):
            obs = observation(k * interval, roles(out[k], decode))
            decision, state = policy.decide(spec, obs, state, k * interval)
        assert decision is not None
        return decision

    def decode_after(leads: float, **kw) -> int:  # type: ignore[no-untyped-def]
        return int(decide_after(leads, **kw).desired[Role.DECODE])

    calm = decode_after(15, surge=False)
    assert decode_after(15) > calm  # past the rise band's 10 lead times, within the step window's 40
    assert decode_after(15, tuning=Tuning(reserve=ReserveTuning(decode_step_window_leads=0.0))) == calm
    assert decode_after(45) == calm
    off = make_spec(extra={"forecast": {"method": "off"}})
    assert decode_after(15, spec=off) == decode_after(15, spec=off, surge=False)
    # a decode scale-up made by the reserve says so, as decode's own reason (its Scale Event's note)
    small = decide_after(15, decode=2)
    mine = [r for r in small.reasons if r.role is Role.DECODE]
    assert mine and mine[0].code is ReasonCode.FORECAST_SCALE_UP and "reserve" in mine[0].message
    assert not [r for r in decide_after(15, decode=2, surge=False).reasons if "reserve" in r.message]


@FAST
@given(
    values=st.lists(st.floats(0.0, 1000.0), min_size=1, max_size=80),
    gaps=st.lists(st.sampled_from([15.0, 15.0, 15.0, 30.0, 200.0]), min_size=80, max_size=80),
    lead=st.sampled_from([30.0, 75.0, 170.0]),
    window_leads=st.sampled_from([2.0, 5.0, 40.0]),
)
def test_step_memory_keeps_the_largest_climb_of_the_window_without_its_samples(
    values: list[float], gaps: list[float], lead: float, window_leads: float
) -> None:
    """The decode step reserve's compact memory answers what ``_rise(window, ·, lead, 1.0)`` over every
    sample of the window would (with the same "at least eight samples, four climbs" rule) while the state
    keeps only two lead times of samples."""
    from autoscaler.core.slo import StepMemory
    from autoscaler.core.slo.demand import rise as _rise
    from autoscaler.core.slo.demand import update_step_memory as _update_step_memory

    window = window_leads * lead
    keep = 2.0 * lead
    memory, kept, every = StepMemory(), (), ()  # type: ignore[var-annotated]
    t = 0.0
    for k, v in enumerate(values):
        t += gaps[k]
        sample = (t, 0.0, 0.0, v)
        every = (*every, sample)
        # as decide does: the memory sees last step's samples plus the new one, then old ones are dropped
        memory, got = _update_step_memory(
            memory, (*kept, sample), lambda r: r[3], now=t, lead_s=lead, window_s=window, recorded=True
        )
        kept = tuple(r for r in (*kept, sample) if t - r[0] < keep)
        in_window = tuple(r for r in every if t - r[0] < window)
        want = _rise(in_window, lambda r: r[3], lead, 1.0) if len(in_window) >= 8 else 0.0
        assert got == want
        assert len(memory.climbs) <= len(in_window)


def _burst_run(ttfts: list[float], tuning=None):  # type: ignore[no-untyped-def]
    """Prefill at a steady 10 replicas and 5 req/s (ample by the model): 8 scrapes without TTFT, then one
    scrape (15 s) per entry of ``ttfts`` (target 1 s; 0.3 is within it)."""
    from autoscaler.core.slo import SLOPolicy

    policy = SLOPolicy(TableProfile(), tuning=tuning)
    state = policy.initial_state(SPEC, 0.0)
    decision = None
    for k, ttft in enumerate([None] * 8 + ttfts):
        roles = {
            Role.PREFILL: role_obs(10, rate=5.0, ttft=ttft, itl=None),
            Role.DECODE: role_obs(10, rate=5.0, ttft=None, itl=None),
        }
        decision, state = policy.decide(SPEC, observation(k * 15.0, roles), state, k * 15.0)
    assert decision is not None
    return decision, state


def _lead_scrapes() -> int:
    """Scrapes (15 s) in one lead time of SPEC with TableProfile: misses further apart are separate bursts."""
    from autoscaler.core.slo import Tuning, forecast_config

    return math.ceil(forecast_config(SPEC, TableProfile(), Tuning()).horizon_s / 15.0)


def test_recurring_misses_the_load_does_not_explain_hold_a_burst_floor_for_the_window() -> None:
    """SLO misses at a fleet the model calls ample (bursts shorter than the rate window) are remembered:
    after two separate bursts, prefill is held at the fleet that would have drained them (ready × wait /
    budget, at most ×2) while the window lasts (SPEC's season is 1 h, so a quarter of it: 15 min), and
    says so. Misses within a lead time are one burst; one burst is not a pattern; with the window at 0
    the floor is off."""
    from autoscaler.core.slo import BurstTuning, Tuning

    apart = [0.3] * (_lead_scrapes() + 1)
    two = [3.0, *apart, 3.0]
    off, _ = _burst_run([*two, *[0.3] * 30], Tuning(bursts=BurstTuning(window_leads=0.0)))
    held, state = _burst_run([*two, *[0.3] * 30])
    assert held.desired[Role.PREFILL] == 20 > off.desired[Role.PREFILL]
    assert [size for _t, role, size in state.bursts] == [20.0, 20.0]
    mine = [r for r in held.reasons if r.role is Role.PREFILL]
    assert mine and mine[0].code is ReasonCode.SLO_SCALE_UP and "held at the 20 replicas" in mine[0].message
    # three misses in a row are one burst: no floor
    once, state = _burst_run([3.0, 3.0, 3.0, *[0.3] * 30])
    assert len(state.bursts) == 1
    assert once.desired == _burst_run([3.0, 3.0, 3.0, *[0.3] * 30], Tuning(bursts=BurstTuning(window_leads=0.0)))[0].desired
    # the floor is what both bursts asked for: a larger second burst does not raise it past the first
    loose = Tuning(headroom=2.0)  # a waiting budget of about 2 s, so neither burst hits the ×2 cap
    uneven, state = _burst_run([1.5, *apart, 2.5, *[0.3] * 30], loose)
    sizes = sorted(size for _t, _role, size in state.bursts)
    assert uneven.desired[Role.PREFILL] == math.ceil(sizes[0]) < math.ceil(sizes[1])
    # past the window the bursts are forgotten and the fleet comes down
    later, state = _burst_run([*two, *[0.3] * 70])
    assert state.bursts == () and later.desired[Role.PREFILL] < 20
    # a miss the model explains (the fleet short for the minute's load) is not a burst
    from autoscaler.core.slo import SLOPolicy

    policy = SLOPolicy(TableProfile())
    st_ = policy.initial_state(SPEC, 0.0)
    for k in range(12):
        roles = {
            Role.PREFILL: role_obs(1, rate=40.0, ttft=None if k < 8 else 3.0, itl=None),
            Role.DECODE: role_obs(10, rate=40.0, ttft=None, itl=None),
        }
        _, st_ = policy.decide(SPEC, observation(k * 15.0, roles), st_, k * 15.0)
    assert st_.bursts == ()


def test_a_ttft_longer_than_the_metrics_window_is_a_backlog_draining_not_a_lesson() -> None:
    """Requests finishing with a TTFT longer than the rate window arrived before it (a start-up or outage
    backlog): nothing is learned from them and no burst is recorded; misses within the window (3 s) do
    both."""
    from autoscaler.api.durations import parse_duration

    window = parse_duration(SPEC.metrics.window)
    apart = [0.3] * (_lead_scrapes() + 1)
    _, draining = _burst_run([window * 2, *apart, window * 2])
    assert draining.bursts == () and draining.ttft_correction == 1.0
    _, missing = _burst_run([3.0, *apart, 3.0])
    assert len(missing.bursts) == 2 and missing.ttft_correction > 1.0


def test_asked_output_rate_counts_sequences_waiting_for_a_decode_slot() -> None:
    """The served output rate of a decode role with a slot queue is its throughput: the demand held for the
    next burst is scaled by sequences in the system over those running, at most ``burst_ratio_max``."""
    from autoscaler.core.slo.demand import asked_output_rate

    def obs(**decode: float) -> Observation:
        base = role_obs(3, rate=5.0, ttft=None, itl=0.05)
        return observation(0.0, {Role.PREFILL: role_obs(10), Role.DECODE: replace(base, **decode)})

    table = [
        (observation(0.0, {Role.BOTH: role_obs(3)}), 1000.0),  # aggregated: no decode slot queue
        (obs(queue_depth=3.0, running=192.0), 1000.0),  # one waiting per replica: admission noise
        (obs(queue_depth=96.0, running=192.0), 1500.0),
        (obs(queue_depth=5000.0, running=192.0), 2000.0),  # capped at burst_ratio_max (2)
        (obs(queue_depth=5000.0, running=0.0), 1000.0),  # nothing running: no ratio to scale by
        (obs(queue_depth=None, running=192.0), 1000.0),  # type: ignore[arg-type]
    ]
    for observed, want in table:
        assert asked_output_rate(observed.roles, 1000.0, 2.0) == want


def test_decode_is_held_at_the_demand_its_slot_queue_showed() -> None:
    """After a spell with sequences waiting for a decode slot, the quiet that follows keeps the fleet the
    queue asked for (the served rate alone, ``burst_ratio_max`` 1, releases more)."""
    from autoscaler.core.slo import BurstTuning, SLOPolicy, Tuning

    def run(tuning: Tuning | None) -> list[int]:
        policy = SLOPolicy(TableProfile(), tuning=tuning)
        state = policy.initial_state(SPEC, 0.0)
        decode, fleet = 4, []
        for k in range(30):
            rate, waiting, running = (5.0, 1.0, 10.0) if k < 8 else (5.0, 400.0, 200.0) if k < 12 else (0, 0, 0)
            roles = {
                Role.PREFILL: role_obs(10, rate=rate, ttft=0.5 if rate else None, itl=None),
                Role.DECODE: replace(
                    role_obs(decode, rate=rate, ttft=None, itl=0.05 if rate else None),
                    queue_depth=waiting,
                    running=running,
                ),
            }
            decision, state = policy.decide(SPEC, observation(k * 15.0, roles), state, k * 15.0)
            decode = decision.desired[Role.DECODE]
            fleet.append(decode)
        return fleet

    asked, served = run(None), run(Tuning(bursts=BurstTuning(ratio_max=1.0)))
    assert asked[:8] == served[:8]
    assert min(asked[12:]) > max(served[12:])


def test_peak_hold_counts_only_busy_time() -> None:
    """On/off traffic returns at the level it left: samples below the idle rate do not age the hold."""
    from autoscaler.core.slo.demand import held as _held

    busy = [(float(t), 20.0, 20_000.0, 4_000.0) for t in range(0, 150, 15)]
    idle = [(float(t), 0.0, 0.0, 0.0) for t in range(150, 600, 15)]
    recent = tuple(busy + idle)
    by_wall = _held(recent, 600.0, 170.0, None)
    by_busy = _held(recent, 600.0, 170.0, 0.05)
    assert max(r[1] for r in by_wall) == 0.0
    assert max(r[1] for r in by_busy) == 20.0
    # all busy: the same as wall time
    steady = tuple((float(t), 20.0, 1.0, 1.0) for t in range(0, 600, 15))
    assert _held(steady, 600.0, 170.0, 0.05) == _held(steady, 600.0, 170.0, None)[::-1]


@FAST
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([15.0, 15.0, 30.0, 400.0]),
            st.sets(st.sampled_from([Role.PREFILL, Role.DECODE])),
            st.floats(1.0, 200.0),
        ),
        min_size=1,
        max_size=120,
    ),
    window_s=st.sampled_from([60.0, 900.0, 6800.0]),
    gap_s=st.sampled_from([0.0, 20.0, 170.0]),
    min_events=st.integers(1, 3),
)
def test_compact_burst_memory_gives_the_floor_of_every_burst_in_the_window(
    steps: list[tuple[float, set[Role], float]], window_s: float, gap_s: float, min_events: int
) -> None:
    """The burst memory folds misses within ``gap_s`` of a role's last burst into it and keeps per role
    only the bursts with fewer than ``min_events`` later ones at least as large, and still answers what
    every burst of the window would: the ``min_events``-th largest."""
    from autoscaler.core.slo.bursts import burst_floor as _burst_floor
    from autoscaler.core.slo.bursts import compact_bursts as _compact_bursts
    from autoscaler.core.slo.bursts import merge_burst as _merge_burst

    compact: tuple = ()  # type: ignore[type-arg]
    misses: list[tuple[float, Role, float]] = []
    t = 0.0
    for gap, roles, size in steps:
        t += gap
        new = [(t, role, size) for role in sorted(roles)]
        misses.extend(new)
        kept = tuple(e for e in compact if t - e[0] < window_s)
        for event in new:
            kept = _merge_burst(kept, event, gap_s)
        compact = _compact_bursts(kept, min_events)
        for role in (Role.PREFILL, Role.DECODE):
            # reference: group every miss of the role into bursts (a miss joins the last burst when that
            # burst is still remembered and within gap_s), then the k-th largest burst in the window
            bursts: list[list[float]] = []  # [last miss time, largest size]
            for mt, mrole, msize in misses:
                if mrole != role:
                    continue
                if bursts and mt - bursts[-1][0] <= gap_s and mt - bursts[-1][0] < window_s:
                    bursts[-1] = [mt, max(msize, bursts[-1][1])]
                else:
                    bursts.append([mt, msize])
            sizes = sorted((b[1] for b in bursts if t - b[0] < window_s), reverse=True)
            want = sizes[min_events - 1] if len(sizes) >= min_events else 0.0
            assert _burst_floor(compact, role, min_events) == want
        assert len(compact) <= len({(b[0], b[1]) for b in misses})
