"""The controller's decision: forecast → capacity model → cost optimiser → PID trim → safety → stabilise.

``decide(spec, observation, state, now) -> (Decision, State)`` is pure: the performance profiles are given to
:class:`SLOPolicy` at construction (the shell loads them with ``autoscaler.catalog.load_profile``), everything
learned is in the returned :class:`SLOState`. Equal inputs give equal outputs. docs/control.md has the
equations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from autoscaler.api.durations import parse_duration
from autoscaler.api.v1alpha1 import ForecastMethod, InferenceAutoscalerSpec, RoleSpec
from autoscaler.core.capacity import (
    Demand,
    ModelParams,
    budgeted_ttft,
    decode_capacity,
    decode_concurrency,
    decode_slots,
    no_wait_ttft,
    predicted_itl,
    prefill_capacity,
    prefill_replicas,
    ttft_quantile,
    update_correction,
)
from autoscaler.core.forecast import Forecast, ForecastConfig, SeriesState, forecast, initial_series, update
from autoscaler.core.optimize import Option, Plan, RoleNeed, solve
from autoscaler.core.pid import PIDConfig, PIDState, pid_step
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.safety import clamp, fallback_replicas, guard_scale_down, role_untrusted_reason
from autoscaler.core.stabilize import (
    StabilizationState,
    behavior_rules,
    rate_limit,
    record_scale,
    stabilize_recommendation,
    within_tolerance,
)
from autoscaler.core.types import (
    Decision,
    ForecastSnapshot,
    Observation,
    Reason,
    ReasonCode,
    Role,
    RoleObservation,
)

__all__ = [
    "RoleState",
    "SLOPolicy",
    "SLOState",
    "StepMemory",
    "Tuning",
    "decide",
    "forecast_config",
    "initial_state",
    "spec_roles",
]


@dataclass(frozen=True, slots=True)
class Tuning:
    """Controller knobs that are not part of the custom resource (docs/control.md explains each).

    Attributes:
        headroom: share of the TTFT waiting budget (target − no-wait floor) the fleet is sized to use
            (``capacity.budgeted_ttft``); the ITL uses ``itl_headroom``. The main knob: lower is safer and
            dearer; above 1 sizes beyond the target.
        pid: PID gains and trim limits.
        correction_gain: gain of the observed/predicted correction filter, 0–1 per step.
        model: capacity-model assumptions.
        min_rate_for_learning: requests/s below which latencies are not used to learn.
        forecast_bucket_s: Holt-Winters bucket width, seconds (default: season/288, at least the interval).
        ewma_tau_s: EWMA time constant, seconds.
        forecast_max_band: cap on the point forecast's residual band, log units (0 = the point forecast
            itself). Default 0: the rise band (``rise_window_leads``) already provisions for how far demand
            climbs within a lead time; both at once counted that margin twice (+6 % GPU-hours on the
            ServeGen day at equal attainment).
        itl_headroom: size decode for ``itl_headroom × ITL target``, fraction in (0, 1]. Separate from
            ``headroom`` because ITL does not queue: the batch cap bounds it, and padding it only shrinks the
            batch the model allows per replica (twice the decode fleet at 0.5 for no latency gained).
        peak_hold_leads: provision at least the largest demand observed over this many lead times
            (cold start + interval). Load that dipped can come back faster than a released replica can:
            a replica given up now serves again only a lead time after it is asked for. 0 turns it off.
        rise_window_leads: over the last this many lead times, the controller records how far demand rose
            within one lead time from each observation; the forecast-quantile of those rises is added to the
            current demand. Traffic that bursts more often than a replica can start (on/off code traffic)
            then keeps capacity for its bursts, smooth traffic gets a margin of its own short-term swings.
            0 turns it off.
        decode_step_window_leads: decode is also provisioned for the largest climb of output tokens/s
            within one lead time seen over the last this many lead times, added to its trimmed current
            demand. Decode slots are a hard limit — a sequence that finds none waits, and that wait is TTFT —
            where a prefill fleet short of capacity only queues a little longer, so decode keeps a reserve
            for the worst step it has seen rather than for a typical one. The step is not trimmed by the
            PID: the trim corrects the model at the current load, not the size of the next surge. Off with
            forecasting (it forecasts the next lead time from past ones); 0 turns it off.
        correction_floor: lower clamp of the learned corrections (1 = learn only that the fleet is slower
            than the profile says, never faster: the queueing model's error depends on the load, and a
            "faster than modelled" learned at light load under-sizes at heavy load).
        itl_learn_share: ITL observations below this share of the ITL target do not train the ITL
            correction: histogram buckets are coarse there (vLLM's p95 interpolates inside 25–50 ms) and
            decode is sized by its batch and KV limits, not by ITL, so nothing depends on it.
        ttft_learn_share: TTFT observations below this share of the TTFT target do not train the TTFT
            correction (a quiet minute says nothing about the fleet near the target; on bursty traffic they
            walked the correction learned in busy minutes back to 1 before each burst).
        burst_window_leads: how long, in lead times, an SLO miss the capacity model does not explain (a burst
            shorter than the rate window) holds its role's burst floor (``_record_bursts``); 0 turns it off.
        burst_season_share: the burst window is at most this share of ``forecast.season``; 0 = no cap.
        burst_min_events: separate bursts (misses more than a lead time apart) of a role within the window
            before its floor applies; the floor is the fleet that this many of them each asked for.
        burst_ratio_max: a burst miss asks for at most this many times the ready fleet that missed; also
            the most by which a decode slot queue scales the served output rate into the demand held
            (``_asked_output_rate``).
        burst_utilization_max: prefill misses above this per-replica utilisation (rate × prefill time /
            ready replicas, 0–1) are a fleet catching up, not a burst.
    """

    headroom: float = 0.5
    pid: PIDConfig = field(default_factory=PIDConfig)
    correction_gain: float = 0.1
    model: ModelParams = field(default_factory=ModelParams)
    min_rate_for_learning: float = 0.05
    forecast_bucket_s: float | None = None
    ewma_tau_s: float = 60.0
    forecast_max_band: float = 0.0
    itl_headroom: float = 0.9
    peak_hold_leads: float = 1.0
    itl_learn_share: float = 0.5
    correction_floor: float = 1.0
    rise_window_leads: float = 10.0
    decode_step_window_leads: float = 40.0
    ttft_learn_share: float = 0.5
    burst_window_leads: float = 40.0
    burst_season_share: float = 0.25
    burst_min_events: int = 2
    burst_ratio_max: float = 2.0
    burst_utilization_max: float = 0.7


@dataclass(frozen=True, slots=True)
class RoleState:
    """Per-role memory: PID state, HPA-behaviour history, and whether the last output was limited."""

    pid: PIDState = field(default_factory=PIDState)
    stabilization: StabilizationState = field(default_factory=StabilizationState)
    limited: bool = False


@dataclass(frozen=True, slots=True)
class StepMemory:
    """The largest climb of a signal within one lead time over a sliding window, kept in O(distinct maxima)
    rather than every sample of the window (40 lead times of 15-s samples were 450 tuples per resource).

    Attributes:
        climbs: ``(sample time s, climb)`` of the samples whose climb exceeds every later one, oldest first
            (a monotone queue: its head is the window's maximum).
        done_through: time of the newest sample whose climb is recorded, Unix seconds.
        last_climb_times: times of the last four recorded climbs (a maximum needs four to be trusted).
        last_sample_times: times of the last eight samples recorded (the window needs eight).
    """

    climbs: tuple[tuple[float, float], ...] = ()
    done_through: float | None = None
    last_climb_times: tuple[float, ...] = ()
    last_sample_times: tuple[float, ...] = ()


#: ``(time s, requests/s, prompt tokens/s, output tokens/s served, output tokens/s asked for)``: the last
#: differs from the served rate while decode sequences wait for a slot (:func:`_asked_output_rate`)
DemandSample = tuple[float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class SLOState:
    """Everything the controller remembers between steps.

    Attributes:
        arrivals, prompt_tokens, output_tokens: forecast series of the three demand signals.
        ttft_correction, itl_correction: learned observed/predicted ratios (1 = the profile is right).
        roles: per-role state.
        failures: consecutive steps without usable data.
        last_time: time of the last step, Unix seconds.
        first_time: time of the first usable observation, Unix seconds.
        recent: observed demand (:data:`DemandSample`) over the last ``max(peak_hold_leads,
            rise_window_leads, 2)`` lead times, oldest first.
        decode_step: the decode step reserve's memory (:class:`StepMemory`).
        bursts: remembered bursts ``(time of the last miss s, role, replicas asked for)``, compacted
            (``_compact_bursts``), oldest first.
    """

    arrivals: SeriesState = field(default_factory=SeriesState)
    prompt_tokens: SeriesState = field(default_factory=SeriesState)
    output_tokens: SeriesState = field(default_factory=SeriesState)
    ttft_correction: float = 1.0
    itl_correction: float = 1.0
    roles: Mapping[Role, RoleState] = field(default_factory=dict)
    failures: int = 0
    last_time: float | None = None
    first_time: float | None = None
    recent: tuple[DemandSample, ...] = ()
    decode_step: StepMemory = field(default_factory=StepMemory)
    bursts: tuple[tuple[float, Role, float], ...] = ()


def _update_step_memory(
    memory: StepMemory,
    recent: tuple[DemandSample, ...],
    value: Callable[[DemandSample], float],
    *,
    now: float,
    lead_s: float,
    window_s: float,
    recorded: bool,
) -> tuple[StepMemory, float]:
    """Record the climbs of the samples of ``recent`` that have a full lead time after them, forget those older
    than ``window_s``, and return the largest climb left: ``_rise(window, value, lead_s, 1.0)`` over the
    samples of the last ``window_s`` seconds, without keeping them (``recorded``: ``recent[-1]`` is new)."""
    climbs = list(memory.climbs)
    climb_times = list(memory.last_climb_times)
    done = memory.done_through
    for t, climb in _climbs(recent, value, lead_s) if recent else []:
        if done is None or t > done:
            while climbs and climbs[-1][1] <= climb:
                climbs.pop()
            climbs.append((t, climb))
            climb_times = [*climb_times, t][-4:]
            done = t
    climbs = [c for c in climbs if now - c[0] < window_s]
    sample_times = memory.last_sample_times
    if recorded and recent:
        sample_times = (*sample_times, recent[-1][0])[-8:]
    new = StepMemory(tuple(climbs), done, tuple(climb_times), sample_times)
    enough = (
        len(sample_times) == 8
        and now - sample_times[0] < window_s
        and len(climb_times) == 4
        and now - climb_times[0] < window_s
    )
    return new, (climbs[0][1] if enough and climbs else 0.0)


def spec_roles(spec: InferenceAutoscalerSpec) -> list[tuple[Role, RoleSpec]]:
    """Configured roles in order (prefill, decode) or (both)."""
    return [(Role(name), rs) for name, rs in spec.roles.items()]


def initial_state(spec: InferenceAutoscalerSpec, now: float) -> SLOState:
    """The state before the first observation."""
    del now
    return SLOState(
        initial_series(),
        initial_series(),
        initial_series(),
        roles={role: RoleState() for role, _ in spec_roles(spec)},
    )


def _cold_start(spec: InferenceAutoscalerSpec, profile: PerformanceProfile) -> float:
    cs = spec.performance.cold_start
    return parse_duration(cs) if cs else profile.cold_start_s


def forecast_config(
    spec: InferenceAutoscalerSpec, profile: PerformanceProfile, tuning: Tuning
) -> ForecastConfig:
    """The forecast settings implied by a spec: horizon = cold start + interval unless set."""
    interval = spec.control_interval_s
    horizon = (
        parse_duration(spec.forecast.horizon)
        if spec.forecast.horizon
        else _cold_start(spec, profile) + interval
    )
    season = parse_duration(spec.forecast.season)
    bucket = tuning.forecast_bucket_s or max(interval, season / 288.0 if season > 0 else 60.0)
    season_buckets = round(season / bucket) if season > 0 else 0
    max_history = max(720, 2 * season_buckets + 8)
    if season_buckets > 2000:  # too fine to keep two seasons: drop seasonality rather than grow the state
        season_buckets = 0
        max_history = 720
    method = (
        spec.forecast.method.value
        if isinstance(spec.forecast.method, ForecastMethod)
        else str(spec.forecast.method)
    )
    return ForecastConfig(
        horizon_s=horizon,
        bucket_s=bucket,
        season_buckets=season_buckets,
        method=method,
        quantile=spec.forecast.quantile,
        ewma_tau_s=tuning.ewma_tau_s,
        max_history=max_history,
        refit_every=max(96, season_buckets),
        max_band=tuning.forecast_max_band,
    )


#: replicas that stand for "more than any fleet" when the capacity model cannot size the demand
_BEYOND_ANY_FLEET = 1e7


def _price(value: str | None) -> float:
    return float(value) if value else 0.0


class SLOPolicy:
    """The controller's policy (name ``slo``): the :class:`~autoscaler.core.types.Policy` the shell and the
    twin both call.

    Args:
        profile: performance profile of ``spec.cost.accelerator`` (from ``spec.performance.profile``).
        profiles: extra profiles by accelerator name or profile name, for ``spec.cost.allowedAccelerators``.
        tuning: knobs outside the custom resource.
    """

    name = "slo"

    def __init__(
        self,
        profile: PerformanceProfile,
        profiles: Mapping[str, PerformanceProfile] | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        self.profile = profile
        self.profiles = dict(profiles or {})
        self.tuning = tuning or Tuning()

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> SLOState:
        """State before the first observation."""
        return initial_state(spec, now)

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: SLOState, now: float
    ) -> tuple[Decision, SLOState]:
        """One control step (see the module docstring)."""
        return decide(
            spec, observation, state, now, profile=self.profile, profiles=self.profiles, tuning=self.tuning
        )

    def _options(
        self, spec: InferenceAutoscalerSpec
    ) -> list[tuple[str, PerformanceProfile, float, int | None]]:
        return _accelerator_options(spec, self.profile, self.profiles)


def _accelerator_options(
    spec: InferenceAutoscalerSpec, profile: PerformanceProfile, profiles: Mapping[str, PerformanceProfile]
) -> list[tuple[str, PerformanceProfile, float, int | None]]:
    """``(name, profile, price per GPU-hour, availability cap)`` per allowed accelerator."""
    if not spec.cost.allowed_accelerators:
        return [(spec.cost.accelerator, profile, _price(spec.cost.price_per_gpu_hour), None)]
    out = []
    for opt in spec.cost.allowed_accelerators:
        prof = profiles.get(opt.profile or "") or profiles.get(opt.name)
        if prof is None:
            prof = profile if opt.name == spec.cost.accelerator else None
        if prof is None:
            continue  # no profile for this type: it cannot be sized, so it is not offered
        out.append((opt.name, prof, _price(opt.price_per_gpu_hour), opt.max_replicas))
    return out or [(spec.cost.accelerator, profile, _price(spec.cost.price_per_gpu_hour), None)]


def _demand_signals(
    spec: InferenceAutoscalerSpec, obs: Observation
) -> tuple[float | None, float | None, float | None]:
    front = obs.roles.get(Role.BOTH) or obs.roles.get(Role.PREFILL)
    back = obs.roles.get(Role.BOTH) or obs.roles.get(Role.DECODE)
    arrival = front.arrival_rate if front is not None else None
    if arrival is None and back is not None:
        arrival = back.arrival_rate
    prompt = front.prompt_tokens_rate if front is not None else None
    gen = back.generation_tokens_rate if back is not None else None
    return arrival, prompt, gen


def _provisioned_demand(
    now: Demand,
    recent: tuple[DemandSample, ...],
    a_up: float,
    p_up: float,
    g_up: float,
    *,
    t_now: float,
    hold_s: float,
    lead_s: float,
    rise_quantile: float,
    rise_window_s: float,
    idle_rate: float | None = None,
) -> Demand:
    """The demand to size for: the largest of the forecast's upper values, the peak of the last ``hold_s``
    seconds, and the current demand plus the ``rise_quantile`` of the rises within one lead time seen in
    the last ``rise_window_s`` seconds of ``recent``.

    Requests/s and prompt tokens/s are combined through one mean prompt length, that of the hold window
    (Σ prompt / Σ requests), so that upper bands drawn separately for the two series cannot inflate the mean
    prompt (a +20 % prompt band over a +5 % arrival band would size for 14 % longer prompts, and prefill time
    grows faster than linearly in the prompt).
    """
    held = _held(recent, t_now, hold_s, idle_rate) or [_sample(t_now, now)]
    arrivals = sum(r[1] for r in held)
    prompts = sum(r[2] for r in held)
    mean_prompt = prompts / arrivals if arrivals > 0 else now.mean_prompt

    def work(r: DemandSample) -> float:
        # requests/s, or the prompt tokens/s in requests of the mean length if that is more
        return max(r[1], r[2] / mean_prompt) if mean_prompt > 0 else r[1]

    rates = [a_up, max(work(r) for r in held)]
    if mean_prompt > 0:
        rates.append(p_up / mean_prompt)
    # the held peak of output tokens/s asked for, not served (a slot queue caps the served rate)
    gens = [g_up, max(r[4] for r in held)]
    window = tuple(r for r in recent if t_now - r[0] < rise_window_s)
    if rise_quantile > 0 and len(window) >= 8:
        current = _sample(t_now, now)
        rates.append(work(current) + _rise(window, work, lead_s, rise_quantile))
        gens.append(now.generation_tokens_rate + _rise(window, lambda r: r[3], lead_s, rise_quantile))
    lam = max(rates)
    return Demand(lam, lam * mean_prompt, max(gens))


def _held(
    recent: tuple[DemandSample, ...],
    t_now: float,
    hold_s: float,
    idle_rate: float | None,
) -> list[DemandSample]:
    """The samples of the peak hold: the last ``hold_s`` seconds, where time with fewer than ``idle_rate``
    requests/s does not count (``None``: wall time). On/off traffic returns at the level it left: a quiet
    spell says nothing about the next burst, and the replicas released in it serve again only a lead
    time after the burst asks for them."""
    if idle_rate is None:
        return [r for r in recent if t_now - r[0] < hold_s]
    held: list[DemandSample] = []
    busy_s, later = 0.0, t_now
    for r in reversed(recent):
        if r[1] >= idle_rate:
            busy_s += later - r[0]
        later = r[0]
        if busy_s >= hold_s:
            break
        held.append(r)
    return held


def _burst_window_s(spec: InferenceAutoscalerSpec, tuning: Tuning, lead_s: float) -> float:
    """How long a burst event is remembered, seconds: ``burst_window_leads`` lead times, at most
    ``burst_season_share`` of the season (the burst level of the busy hours must not hold the quiet ones)."""
    window = tuning.burst_window_leads * lead_s
    season = parse_duration(spec.forecast.season)
    if season > 0 and tuning.burst_season_share > 0:
        window = min(window, tuning.burst_season_share * season)
    return window


def _record_bursts(
    events: tuple[tuple[float, Role, float], ...],
    obs_roles: Mapping[Role, RoleObservation],
    profile: PerformanceProfile,
    model: ModelParams,
    tuning: Tuning,
    *,
    now: float,
    window_s: float,
    gap_s: float,
    demand: Demand,
    learning: bool,
    decode_congested: bool,
    ttft_goal: float,
    ttft_correction: float,
    ttft_target: float,
    itl_goal: float,
    q_ttft: float,
    q_itl: float,
) -> tuple[tuple[float, Role, float], ...]:
    """Bursts ``(time of the last miss s, role, replicas)`` of the last ``window_s`` seconds, with this step's
    misses added: a miss within ``gap_s`` of the role's last burst (a lead time: the fleet could not yet
    answer it) is the same burst, which keeps the largest fleet any of its misses asked for.

    A burst miss is an SLO miss at a ready fleet that the capacity model, fed the rate window's demand,
    says is enough: the demand came in bursts shorter than the window, which per-minute rates flatten
    (Azure code: 1-s peaks of 1,228 req/s in minutes of 100). A burst's queue drains across the fleet, so
    its wait falls about as ``1/n``: the fleet that serves it within the goal is ``ready × wait / budget``
    (prefill, on a TTFT above the target: the TTFT above the no-wait floor over the headroom goal's
    waiting budget; decode: sequences running and waiting over those running), at most
    ``burst_ratio_max`` times the fleet that missed. Misses the model explains (the fleet was short for
    the minute's load, a ramp) are the forecaster's and the PID's, and misses while replicas start or at
    a utilisation above ``burst_utilization_max`` are a fleet catching up, not a burst; neither is
    recorded.
    """
    kept = tuple(e for e in events if now - e[0] < window_s) if window_s > 0 else ()
    if window_s <= 0 or (not learning and not decode_congested):
        return _compact_bursts(kept, tuning.burst_min_events)
    added: list[tuple[float, Role, float]] = []
    pre, dec = obs_roles.get(Role.PREFILL), obs_roles.get(Role.DECODE)
    if (
        learning
        and pre is not None
        and pre.ready > 0
        and pre.ttft is not None
        and pre.ttft > ttft_target
        and demand.arrival_rate * profile.prefill_time_s(demand.mean_prompt) / pre.ready
        < tuning.burst_utilization_max
    ):
        floor = no_wait_ttft(profile, demand.mean_prompt, q_ttft, model)
        predicted = ttft_quantile(profile, pre.ready, demand.arrival_rate, demand.mean_prompt, q_ttft, model)
        explained = ttft_correction * predicted > ttft_goal
        if ttft_goal > floor and not explained:
            ratio = min(tuning.burst_ratio_max, (pre.ttft - floor) / (ttft_goal - floor))
            added.append((now, Role.PREFILL, pre.ready * ratio))
    steady_fleet = all(ro.starting == 0 and ro.trustworthy for ro in obs_roles.values())
    if decode_congested and steady_fleet and dec is not None and dec.ready > 0:
        per_replica = decode_capacity(profile, itl_goal, demand, q_itl, model)
        explained = per_replica <= 0 or demand.generation_tokens_rate / per_replica > dec.ready
        if not explained:
            running = max(1.0, dec.running or 0.0)
            ratio = min(tuning.burst_ratio_max, (running + (dec.queue_depth or 0.0)) / running)
            added.append((now, Role.DECODE, dec.ready * ratio))
    for event in added:
        kept = _merge_burst(kept, event, gap_s)
    return _compact_bursts(kept, tuning.burst_min_events)


def _merge_burst(
    bursts: tuple[tuple[float, Role, float], ...], event: tuple[float, Role, float], gap_s: float
) -> tuple[tuple[float, Role, float], ...]:
    """``bursts`` with ``event`` added: folded into the role's last burst when within ``gap_s`` of it."""
    t, role, size = event
    for k in range(len(bursts) - 1, -1, -1):
        last_t, last_role, last_size = bursts[k]
        if last_role != role:
            continue
        if t - last_t <= gap_s:
            return (*bursts[:k], *bursts[k + 1 :], (t, role, max(size, last_size)))
        break
    return (*bursts, event)


def _compact_bursts(
    events: tuple[tuple[float, Role, float], ...], min_events: int
) -> tuple[tuple[float, Role, float], ...]:
    """The bursts :func:`_burst_floor` can still need, oldest first: per role, those with fewer than
    ``min_events`` later bursts at least as large (any trailing window that holds one holds those later
    ones too, so its ``min_events``-th largest never comes from it). A role that bursts every few minutes
    would otherwise keep a window's worth."""
    k = max(1, min_events)
    kept: list[tuple[float, Role, float]] = []
    later: dict[Role, list[float]] = {}
    for event in reversed(events):
        _t, role, size = event
        sizes = later.setdefault(role, [])
        if sum(1 for other in sizes if other >= size) < k:
            kept.append(event)
            # only the k largest later sizes decide whether an earlier burst is needed
            sizes.append(size)
            sizes.sort(reverse=True)
            del sizes[k:]
    kept.reverse()
    return tuple(kept)


def _burst_floor(events: tuple[tuple[float, Role, float], ...], role: Role, min_events: int) -> float:
    """The role's burst floor, replicas: the largest fleet that ``min_events`` separate remembered bursts
    each asked for (their ``min_events``-th largest). One burst can be a ramp the model misread or a
    spike no fleet near the load would serve; a level that bursts reach again is a pattern."""
    k = max(1, min_events)
    sizes = sorted((size for _t, r, size in events if r == role), reverse=True)
    return sizes[k - 1] if len(sizes) >= k else 0.0


def _sample(t: float, d: Demand, asked_output: float | None = None) -> DemandSample:
    served = d.generation_tokens_rate
    return t, d.arrival_rate, d.prompt_tokens_rate, served, served if asked_output is None else asked_output


def _decode_congested(dec: RoleObservation | None) -> bool:
    """More than one sequence waiting per ready decode replica (a momentary 1–2 is admission noise)."""
    return dec is not None and (dec.queue_depth or 0.0) > max(1, dec.ready)


def _asked_output_rate(obs: Observation, served: float, ratio_max: float) -> float:
    """Output tokens/s asked of the decode role, from the ``served`` rate: while sequences wait for a slot,
    the served rate is the fleet's throughput, not the demand, so it is scaled by the sequences in the
    system over those running (at most ``ratio_max``). Azure code: 3 decode replicas ran 192 sequences
    with up to 5,000 waiting; a peak hold of the served rate then released 7 → 4 replicas in the quiet
    minutes before the next burst, which found 1,500 sequences waiting for a slot."""
    dec = obs.roles.get(Role.DECODE)
    if dec is None or not _decode_congested(dec) or not dec.running:
        return served
    asked = served * min(ratio_max, (dec.running + (dec.queue_depth or 0.0)) / dec.running)
    # a served rate near the float limit must not become an infinite demand (it is garbage either way,
    # and the rest of the sizing is guarded against it, not against inf)
    return asked if math.isfinite(asked) else served


def _climbs(
    samples: tuple[DemandSample, ...],
    value: Callable[[DemandSample], float],
    lead_s: float,
) -> list[tuple[float, float]]:
    """``(t, max(value over (t, t + lead]) − value(t), at least 0)`` for each sample with a full lead time
    after it (up to the last sample), oldest first."""
    values = [value(r) for r in samples]
    times = [r[0] for r in samples]
    out: list[tuple[float, float]] = []
    j = 0
    for i, t in enumerate(times):
        if t + lead_s > times[-1]:
            break
        j = max(j, i + 1)
        while j < len(times) and times[j] <= t + lead_s:
            j += 1
        out.append((t, max(0.0, max(values[i + 1 : j], default=values[i]) - values[i])))
    return out


def _rise(
    samples: tuple[DemandSample, ...],
    value: Callable[[DemandSample], float],
    lead_s: float,
    quantile: float,
) -> float:
    """``quantile`` of the samples' climbs (:func:`_climbs`; 0 when fewer than four): how far demand climbed
    within one lead time, recently."""
    rises = [climb for _t, climb in _climbs(samples, value, lead_s)]
    if len(rises) < 4:
        return 0.0
    rises.sort()
    pos = quantile * (len(rises) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(rises) - 1)
    return rises[lo] + (rises[hi] - rises[lo]) * (pos - lo)


def _upper(current: float | None, fc: Forecast | None) -> float | None:
    if fc is None:
        return current
    return max(current or 0.0, fc.upper)


def _hold_decision(
    spec: InferenceAutoscalerSpec, obs: Observation, state: SLOState, now: float, reason: Reason
) -> tuple[Decision, SLOState]:
    failures = state.failures + 1
    fallback = failures >= spec.fallback.after_failures
    desired: dict[Role, int] = {}
    for role, rs in spec_roles(spec):
        ro = obs.roles.get(role)
        current = ro.replicas if ro is not None else rs.min_replicas
        desired[role] = (
            fallback_replicas(spec, role, current)
            if fallback
            else clamp(current, rs.min_replicas, rs.max_replicas)
        )
    reasons = [reason]
    if fallback:
        reasons.insert(
            0,
            Reason(
                ReasonCode.FALLBACK,
                f"{failures} intervals without usable metrics: fallback {spec.fallback.policy.value}",
            ),
        )
    return Decision(desired=desired, reasons=tuple(reasons)), replace(state, failures=failures, last_time=now)


def decide(
    spec: InferenceAutoscalerSpec,
    observation: Observation,
    state: SLOState,
    now: float,
    *,
    profile: PerformanceProfile,
    profiles: Mapping[str, PerformanceProfile] | None = None,
    tuning: Tuning | None = None,
) -> tuple[Decision, SLOState]:
    """One control step. Pure and deterministic; see docs/control.md for the equations."""
    tuning = tuning or Tuning()
    roles = spec_roles(spec)
    obs_roles = {role: ro.sanitized() for role, ro in observation.roles.items()}
    obs = Observation(observation.time, obs_roles, observation.source_ok, observation.error)
    if not obs.source_ok:
        return _hold_decision(
            spec,
            obs,
            state,
            now,
            Reason(ReasonCode.METRICS_UNAVAILABLE, f"metrics source failed: {obs.error or 'no detail'}"),
        )
    missing = [role.value for role, _ in roles if role not in obs_roles]
    if missing:
        return _hold_decision(
            spec,
            obs,
            state,
            now,
            Reason(ReasonCode.METRICS_UNAVAILABLE, f"no observation for role(s) {', '.join(missing)}"),
        )

    # the main knob also scales decode's slot margin: decode slots are a hard limit (a sequence that finds
    # none waits, and that wait is TTFT), so a safer setting must buy decode margin as well as prefill's;
    # a headroom above 1 spends more of the TTFT budget but never thins the margin below z_p (a fleet short
    # of slots misses TTFT whatever its budget: Azure code at 2.5 went 94.4 → 95.0 % for +1.5 % GPU-hours)
    model = replace(
        tuning.model,
        disaggregated=spec.roles.disaggregated,
        slot_margin=tuning.model.slot_margin / min(1.0, max(0.25, tuning.headroom)),
    )
    slo = spec.slo
    q_ttft, q_itl = slo.ttft.quantile, slo.itl.quantile
    ttft_t, itl_t = slo.ttft.target_s, slo.itl.target_s

    # 1. forecast the demand signals -----------------------------------------------------------------
    cfg = forecast_config(spec, profile, tuning)
    arrival, prompt, gen = _demand_signals(spec, obs)
    arrivals = update(state.arrivals, cfg, now, arrival) if arrival is not None else state.arrivals
    prompts = update(state.prompt_tokens, cfg, now, prompt) if prompt is not None else state.prompt_tokens
    outputs = update(state.output_tokens, cfg, now, gen) if gen is not None else state.output_tokens
    f_arr, f_pr, f_gen = forecast(arrivals, cfg), forecast(prompts, cfg), forecast(outputs, cfg)
    a_up, p_up, g_up = _upper(arrival, f_arr), _upper(prompt, f_pr), _upper(gen, f_gen)
    if a_up is None or p_up is None or g_up is None:
        new_state = replace(state, arrivals=arrivals, prompt_tokens=prompts, output_tokens=outputs)
        return _hold_decision(
            spec,
            obs,
            new_state,
            now,
            Reason(ReasonCode.METRICS_UNAVAILABLE, "demand (arrival, prompt or output token rate) unknown"),
        )
    now_demand = Demand(arrival or 0.0, prompt or 0.0, gen or 0.0)
    hold_s = tuning.peak_hold_leads * cfg.horizon_s
    rise_s = tuning.rise_window_leads * cfg.horizon_s
    step_s = tuning.decode_step_window_leads * cfg.horizon_s if cfg.method != "off" else 0.0
    # the step reserve keeps its own compact memory; samples are kept a lead time past it to measure climbs
    keep_s = max(hold_s, rise_s, 2.0 * cfg.horizon_s if step_s > 0 else 0.0)
    first_seen = state.first_time if state.first_time is not None else now
    # rates over a window that reaches back before the first scrape are extrapolated from part of it and
    # read low (Prometheus's extrapolatedRate); their climb to the true level is not a rise of demand
    metrics_window_s = parse_duration(spec.metrics.window)
    recorded = keep_s > 0 and now - first_seen >= metrics_window_s
    # every sample is seen by the step memory once more as it leaves ``recent`` (after a gap it still
    # counts as a climb of zero)
    asked_output = _asked_output_rate(obs, now_demand.generation_tokens_rate, tuning.burst_ratio_max)
    seen = (*state.recent, _sample(now, now_demand, asked_output)) if recorded else state.recent
    recent = tuple(r for r in seen if now - r[0] < keep_s) if keep_s > 0 else ()
    demand = _provisioned_demand(
        now_demand,
        recent,
        a_up,
        p_up,
        g_up,
        t_now=now,
        hold_s=hold_s,
        lead_s=cfg.horizon_s,
        # the rise band is a forecast too (of the next lead time's maximum, from recent climbs): off with
        # forecasting, which leaves the purely reactive controller (current demand and the peak hold)
        rise_quantile=spec.forecast.quantile if tuning.rise_window_leads > 0 and cfg.method != "off" else 0.0,
        rise_window_s=rise_s,
        idle_rate=tuning.min_rate_for_learning,
    )
    # the largest climb of output tokens/s within a lead time over the step window (decode's reserve)
    step_memory, decode_step = StepMemory(), 0.0
    if step_s > 0:
        step_memory, decode_step = _update_step_memory(
            state.decode_step,
            seen,
            lambda r: r[3],
            now=now,
            lead_s=cfg.horizon_s,
            window_s=step_s,
            recorded=recorded,
        )
    snapshot = None
    if f_arr is not None:
        snapshot = ForecastSnapshot(a_up, f_arr.mean, p_up, g_up, f_arr.horizon_s, f_arr.method)

    # 2. learn the correction at a steady, trusted fleet -------------------------------------------------
    c_ttft, c_itl = state.ttft_correction, state.itl_correction
    busy = now_demand.arrival_rate >= tuning.min_rate_for_learning
    # In disaggregated serving a request's TTFT also waits for a decode slot: while the decode role has
    # a queue, TTFT measures decode congestion, not the prefill model, so nothing is learned
    # from it and the TTFT error is charged to the decode role (below).
    dec = obs_roles.get(Role.DECODE)
    decode_congested = _decode_congested(dec)
    # A TTFT longer than the metrics window is that of requests that arrived before the window: a backlog
    # draining (after a start-up or an outage), which neither the window's demand nor the present fleet
    # explains, so it trains nothing and records no burst (Azure code, seed 2: a 607-s TTFT from the
    # start-up backlog taught the correction a slow fleet and held prefill at 114 for the hour).
    draining = any(ro.ttft is not None and ro.ttft > metrics_window_s for ro in obs_roles.values())
    steady = (
        all(ro.starting == 0 and ro.trustworthy for ro in obs_roles.values())
        and not decode_congested
        and not draining
    )
    for role, ro in obs_roles.items():
        if not busy or not steady or ro.ready <= 0:
            continue
        if (
            role in (Role.PREFILL, Role.BOTH)
            and ro.ttft is not None
            and ro.ttft >= tuning.ttft_learn_share * ttft_t
        ):
            pred = ttft_quantile(
                profile, ro.ready, now_demand.arrival_rate, now_demand.mean_prompt, q_ttft, model
            )
            c_ttft = update_correction(
                c_ttft, ro.ttft, pred, tuning.correction_gain, lo=tuning.correction_floor
            )
        if (
            role in (Role.DECODE, Role.BOTH)
            and ro.itl is not None
            and ro.itl >= tuning.itl_learn_share * itl_t
        ):
            pred = predicted_itl(profile, ro.ready, now_demand, q_itl, model)
            c_itl = update_correction(c_itl, ro.itl, pred, tuning.correction_gain, lo=tuning.correction_floor)

    # 3. PID per role on log(observed / (headroom × target)) ------------------------------------------
    role_states = dict(state.roles)
    pids: dict[Role, PIDState] = {}
    ttft_goal = budgeted_ttft(profile, ttft_t, tuning.headroom, demand.mean_prompt, q_ttft, model)
    for role, _ in roles:
        rst = role_states.get(role, RoleState())
        ro = obs_roles[role]
        hold = (not ro.trustworthy) or ro.starting > 0 or rst.limited or not busy
        if role == Role.PREFILL:
            # while decode is congested, TTFT measures the wait for a decode slot, not prefill
            meas = None if decode_congested else ro.ttft
            sp = ttft_goal
        elif role == Role.DECODE:
            meas, sp = ro.itl, tuning.itl_headroom * itl_t
            pre = obs_roles.get(Role.PREFILL)
            if decode_congested and pre is not None and pre.ttft is not None and meas is not None:
                # TTFT is late because prefilled requests wait for a decode slot: the decode role is short
                meas = max(meas, sp * pre.ttft / ttft_goal)
        else:
            ratios = [
                v
                for v in ((ro.ttft / ttft_t) if ro.ttft else None, (ro.itl / itl_t) if ro.itl else None)
                if v is not None
            ]
            meas, sp = (max(ratios) if ratios else None), tuning.headroom
        pids[role] = pid_step(tuning.pid, rst.pid, meas, sp, now, hold=hold)

    # 3b. bursts shorter than the rate window: SLO misses the minute-scale demand does not explain --------
    bursts = _record_bursts(
        state.bursts,
        obs_roles,
        profile,
        model,
        tuning,
        now=now,
        window_s=_burst_window_s(spec, tuning, cfg.horizon_s),
        gap_s=cfg.horizon_s,
        demand=now_demand,
        learning=busy and steady,
        decode_congested=decode_congested,
        ttft_goal=ttft_goal,
        ttft_correction=c_ttft,
        ttft_target=ttft_t,
        itl_goal=tuning.itl_headroom * itl_t / c_itl,
        q_ttft=q_ttft,
        q_itl=q_itl,
    )
    burst_floor = {role: _burst_floor(bursts, role, tuning.burst_min_events) for role, _ in roles}

    # 4. feedforward sizing + cost optimiser -----------------------------------------------------------
    options = _accelerator_options(spec, profile, profiles or {})
    needs: list[RoleNeed] = []
    eff_ttft = ttft_goal / c_ttft
    eff_itl = tuning.itl_headroom * itl_t / c_itl

    def prefill_rate_per_replica(prof: PerformanceProfile, ttft_target: float) -> float:
        # requests/s per replica at this load: the pooled queue's capacity grows with the fleet
        if demand.arrival_rate <= 0:
            return prefill_capacity(prof, ttft_target, demand.mean_prompt, q_ttft, model)
        n = prefill_replicas(prof, ttft_target, demand.arrival_rate, demand.mean_prompt, q_ttft, model)
        if n == math.inf:
            # beyond any fleet the model can size: a capacity that asks for far more than maxReplicas, so
            # the plan saturates at the bound (or the budget) instead of reading as "no capacity needed"
            return demand.arrival_rate / _BEYOND_ANY_FLEET
        return demand.arrival_rate / n if n > 0 else 0.0

    def role_caps(role: Role, prof: PerformanceProfile, ttft_target: float, itl_target: float) -> float:
        if role == Role.PREFILL:
            return prefill_rate_per_replica(prof, ttft_target)
        if role == Role.DECODE:
            return decode_capacity(prof, itl_target, demand, q_itl, model)
        lam = prefill_rate_per_replica(prof, ttft_target)
        tok = decode_capacity(prof, itl_target, demand, q_itl, model)
        if lam <= 0 or tok <= 0:
            return 0.0
        load = demand.arrival_rate / lam + demand.generation_tokens_rate / tok
        return 1.0 / load if load > 0 else math.inf

    reserve_binds = False
    floor_binds: set[Role] = set()
    for role, rs in roles:
        factor = math.exp(pids[role].output)
        opts = []
        for name, prof, price, _cap in options:
            cap = role_caps(role, prof, eff_ttft, eff_itl)
            opts.append(Option(name, cap if math.isfinite(cap) else 1e12, price * rs.gpus_per_replica))
        # backlog terms: work already in the system that throughput-based rates do not show (a saturated
        # role's output rate understates its demand). Queued work must be drained by the capacity asked for
        # now, which serves only after the lead time h: q·S/h prefill replicas, q·Ō/h decode tokens/s
        # (draining "within the TTFT target" would ask for capacity that arrives after the queue is gone
        # and then sits idle; giving every queued sequence its own slot would ask for ×50 during a burst).
        # Sequences already running need a decode slot at the ITL target: n_d ≥ running/B* (B* the batch
        # limit), or running/m* (the concurrency with the slot margin) once sequences queue for a slot.
        ro = obs_roles[role]
        cap0 = opts[0].capacity
        queued = ro.queue_depth or 0.0
        if role == Role.PREFILL:
            need = demand.arrival_rate * factor
            if queued and cap0 > 0:
                need += queued * profile.prefill_time_s(demand.mean_prompt) / cfg.horizon_s * cap0
            if burst_floor[role] * cap0 > need:
                floor_binds.add(role)
                need = burst_floor[role] * cap0
        elif role == Role.DECODE:
            # the step reserve is added after the trim: the trim corrects the model at this load, while a
            # surge of the size already seen fills slots whatever the model's bias
            reserve_need = now_demand.generation_tokens_rate * factor + decode_step
            need = max(demand.generation_tokens_rate * factor, reserve_need)
            if queued:
                # sequences already wait for a slot: grow to the concurrency that leaves the slot margin
                m_star = decode_concurrency(profile, eff_itl, demand, q_itl, model)
            else:
                # the running count is itself a sample of the fluctuation the margin covers; it must fit
                # in the slots (the batch limit), not under the margin again
                m_star = float(decode_slots(profile, eff_itl, demand, model))
            if m_star > 0 and cap0 > 0:
                need = max(need, (ro.running or 0.0) / m_star * cap0)
            reserve_binds = decode_step > 0 and need <= reserve_need
            if burst_floor[role] * cap0 > need:
                floor_binds.add(role)
                need = burst_floor[role] * cap0
            need += queued * demand.mean_output / cfg.horizon_s
        else:
            need = factor if demand.arrival_rate > 0 else 0.0
            backlog = 0.0
            if queued:
                backlog += queued * profile.prefill_time_s(demand.mean_prompt) / cfg.horizon_s
            m_star = decode_concurrency(profile, eff_itl, demand, q_itl, model)
            if m_star > 0:
                backlog = max(backlog, (ro.running or 0.0) / m_star)
            if backlog > 0 and cap0 > 0:
                need = max(need, backlog / max(cap0, 1e-9))
        needs.append(RoleNeed(need, rs.min_replicas, rs.max_replicas, tuple(opts)))
    caps = {name: cap for name, _p, _pr, cap in options if cap is not None}
    budget = float(spec.cost.budget_per_hour) if spec.cost.budget_per_hour else None
    plan: Plan = solve(needs, caps, budget)
    raw = dict(zip([r for r, _ in roles], plan.totals(), strict=True))

    # 5. safety, then HPA-behaviour stabilisation --------------------------------------------------------
    up_rules, down_rules = behavior_rules(spec.behavior)
    longest = max([p[2] for p in up_rules.policies + down_rules.policies] or [15.0])
    reasons: list[Reason] = []
    limit_reasons: list[Reason] = []
    desired: dict[Role, int] = {}
    new_roles: dict[Role, RoleState] = {}
    # the SLO check for scale-down uses the unpadded targets and the larger of current and forecast demand
    check = Demand(
        max(demand.arrival_rate, now_demand.arrival_rate),
        max(demand.prompt_tokens_rate, now_demand.prompt_tokens_rate),
        max(demand.generation_tokens_rate, now_demand.generation_tokens_rate),
    )

    def holds(role: Role, n: int) -> bool:
        if n <= 0:
            return check.arrival_rate <= 0
        if role == Role.PREFILL:
            # the unpadded target (headroom 1), or the floor plus slack when the target is below the floor
            goal = budgeted_ttft(profile, ttft_t, 1.0, check.mean_prompt, q_ttft, model)
            return (
                c_ttft * ttft_quantile(profile, n, check.arrival_rate, check.mean_prompt, q_ttft, model)
                <= goal
            )
        if role == Role.DECODE:
            return c_itl * predicted_itl(profile, n, check, q_itl, model) <= itl_t
        n_pre = prefill_replicas(
            profile, ttft_t / c_ttft, check.arrival_rate, check.mean_prompt, q_ttft, model
        )
        lam = check.arrival_rate / n_pre if 0 < n_pre < math.inf else 0.0
        tok = decode_capacity(profile, itl_t / c_itl, check, q_itl, model)
        return lam > 0 and tok > 0 and check.arrival_rate / lam + check.generation_tokens_rate / tok <= n

    for role, rs in roles:
        ro = obs_roles[role]
        rst = role_states.get(role, RoleState())
        current = ro.replicas
        untrusted = role_untrusted_reason(obs, role, ro)
        if untrusted is None and (
            arrivals.time is None or now - first_seen < metrics_window_s
        ):
            untrusted = Reason(ReasonCode.HOLD_ON_BAD_DATA, "less than one metrics window of history", role)
        holds_role = functools.partial(holds, role)
        proposal, guard = guard_scale_down(raw[role], current, untrusted, holds_role, role)
        limit_reasons.extend(guard)
        rules = up_rules if proposal > current else down_rules
        if proposal != current and within_tolerance(proposal, current, rules.tolerance):
            limit_reasons.append(
                Reason(
                    ReasonCode.WITHIN_TOLERANCE,
                    f"{current}→{proposal} within tolerance {rules.tolerance:g}",
                    role,
                )
            )
            proposal = current
        stabilized, stab = stabilize_recommendation(
            rst.stabilization, proposal, current, now, up_rules, down_rules
        )
        if stabilized != proposal:
            limit_reasons.append(
                Reason(ReasonCode.STABILIZED, f"recommendation {proposal} stabilised to {stabilized}", role)
            )
        final, rl = rate_limit(
            stab, stabilized, current, rs.min_replicas, rs.max_replicas, now, up_rules, down_rules, role
        )
        limit_reasons.extend(rl)
        stab = record_scale(stab, current, final, now, longest)
        desired[role] = final
        new_roles[role] = RoleState(pids[role], stab, limited=final != raw[role])

    # the budget wins over the scale-down guard and stabilisation: they may keep a role above the
    # optimiser's budget-fitting plan, so trim the roles that sit above it (scale-ups first, then roles
    # held above the plan on trusted data; a role on untrusted data never goes below its current count)
    if budget is not None:
        role_price = {role: needs[k].options[0].price_per_hour for k, (role, _rs) in enumerate(roles)}
        trimmed = _fit_budget(
            desired,
            raw,
            {r: obs_roles[r].replicas for r, _ in roles},
            {r: rs.min_replicas for r, rs in roles},
            {r: role_untrusted_reason(obs, r, obs_roles[r]) is not None for r, _ in roles},
            role_price,
            budget,
        )
        if trimmed != desired:
            limit_reasons.append(
                Reason(
                    ReasonCode.BUDGET_LIMITED,
                    "trimmed to the hourly budget: "
                    + ", ".join(
                        f"{r.value} {desired[r]}→{trimmed[r]}" for r, _ in roles if trimmed[r] != desired[r]
                    ),
                )
            )
            for r in trimmed:
                new_roles[r] = replace(new_roles[r], limited=True)
            desired = trimmed

    # 6. explain -------------------------------------------------------------------------------------
    ups = [r for r, _ in roles if desired[r] > obs_roles[r].replicas]
    downs = [r for r, _ in roles if desired[r] < obs_roles[r].replicas]
    plan_text = ", ".join(f"{r.value} {obs_roles[r].replicas}→{desired[r]}" for r, _ in roles)
    if ups:
        trims = max(math.exp(pids[r].output) for r in ups)
        if trims > 1.05:
            code, why = ReasonCode.SLO_SCALE_UP, f"observed latency above target (trim ×{trims:.2f})"
        elif f_arr is not None and f_arr.upper > now_demand.arrival_rate * 1.05:
            code, why = (
                ReasonCode.FORECAST_SCALE_UP,
                (
                    f"forecast {a_up:.2f} req/s in {cfg.horizon_s:.0f}s ({f_arr.method}) "
                    f"vs {now_demand.arrival_rate:.2f} now"
                ),
            )
        else:
            code, why = (
                ReasonCode.LOAD_SCALE_UP,
                f"load {now_demand.arrival_rate:.2f} req/s needs more capacity",
            )
        reasons.append(Reason(code, f"{plan_text}: {why}"))
        if Role.DECODE in ups and reserve_binds:
            # the role's own reason: the Scale Event of decode carries it (what a user sees for 11→16 at a
            # steady load is "the reserve", not "load needs more capacity")
            reasons.append(
                Reason(
                    ReasonCode.FORECAST_SCALE_UP,
                    f"decode {obs_roles[Role.DECODE].replicas}→{desired[Role.DECODE]}: sized for "
                    f"{now_demand.generation_tokens_rate:,.0f} output tokens/s now "
                    f"(model trim ×{math.exp(pids[Role.DECODE].output):.2f}) plus a reserve of "
                    f"{decode_step:,.0f} for the largest climb within {cfg.horizon_s:.0f}s over the last "
                    f"{step_s / 60:.0f} min",
                    Role.DECODE,
                )
            )
        for role in (r for r in ups if r in floor_binds):
            reasons.append(
                Reason(
                    ReasonCode.SLO_SCALE_UP,
                    f"{role.value} {obs_roles[role].replicas}→{desired[role]}: held at the "
                    f"{burst_floor[role]:.0f} replicas that {max(1, tuning.burst_min_events)} separate "
                    f"SLO-missing bursts in the last {_burst_window_s(spec, tuning, cfg.horizon_s) / 60:.0f} "
                    "min each asked for; the load they came with did not explain them (bursts shorter "
                    "than the rate window)",
                    role,
                )
            )
    elif downs:
        reasons.append(
            Reason(ReasonCode.SCALE_DOWN, f"{plan_text}: the smaller fleet is predicted to hold the SLO")
        )
    else:
        reasons.append(Reason(ReasonCode.STEADY, f"{plan_text}: no change"))
    if plan.budget_limited:
        reasons.append(
            Reason(
                ReasonCode.BUDGET_LIMITED,
                f"budget {budget:g}/h buys {plan.served:.0%} of the capacity the SLO needs",
            )
        )
    reasons.extend(limit_reasons)

    pred_ttft, pred_itl = _predict(profile, desired, now_demand, q_ttft, q_itl, model, c_ttft, c_itl)
    for value, target, what in ((pred_ttft, ttft_t, "TTFT"), (pred_itl, itl_t, "ITL")):
        if value is not None and value > target:
            reasons.append(
                Reason(ReasonCode.SLO_VIOLATED, f"predicted {what} {value:.3g}s above target {target:g}s")
            )
    if not any(r.code == ReasonCode.SLO_VIOLATED for r in reasons):
        reasons.append(Reason(ReasonCode.SLO_MET, "predicted TTFT and ITL within targets"))

    accel: dict[Role, str] = {}
    cost = 0.0
    for (role, _rs), counts in zip(roles, plan.counts, strict=True):
        pick = counts.index(max(counts)) if any(counts) else 0
        opt = needs[[r for r, _ in roles].index(role)].options[pick]
        accel[role] = opt.accelerator
        cost += desired[role] * opt.price_per_hour
    decision = Decision(
        desired=desired,
        reasons=tuple(reasons),
        predicted_ttft=pred_ttft,
        predicted_itl=pred_itl,
        forecast=snapshot,
        cost_per_hour=cost,
        accelerators=accel if len(options) > 1 else {},
    )
    new_state = SLOState(
        arrivals, prompts, outputs, c_ttft, c_itl, new_roles, 0, now, first_seen, recent, step_memory, bursts
    )
    return decision, new_state


def _fit_budget(
    desired: Mapping[Role, int],
    plan: Mapping[Role, int],
    current: Mapping[Role, int],
    lo: Mapping[Role, int],
    untrusted: Mapping[Role, bool],
    price: Mapping[Role, float],
    budget: float,
) -> dict[Role, int]:
    """Lower ``desired`` until its cost (Σ price·n, $/h) fits ``budget``: first scale-ups back towards the
    current count, then trusted roles down towards the plan, then trusted roles down to their minimum. A role
    on untrusted data never goes below ``min(desired, current)``."""
    out = dict(desired)

    def cost() -> float:
        return sum(out[r] * price[r] for r in out)

    floors = [
        {r: max(lo[r], min(out[r], max(current[r], plan[r]))) for r in out},
        {r: max(lo[r], min(out[r], current[r] if untrusted[r] else plan[r])) for r in out},
        {r: max(lo[r], min(out[r], current[r])) if untrusted[r] else lo[r] for r in out},
    ]
    for floor in floors:
        while cost() > budget + 1e-9:
            above = [r for r in out if out[r] > floor[r]]
            if not above:
                break
            # the role furthest above its floor gives a replica first (ties: the dearer one)
            r = max(above, key=lambda x: (out[x] - floor[x], price[x], x.value))
            out[r] -= 1
    return out


def _predict(
    profile: PerformanceProfile,
    desired: Mapping[Role, int],
    d: Demand,
    q_ttft: float,
    q_itl: float,
    model: ModelParams,
    c_ttft: float,
    c_itl: float,
) -> tuple[float | None, float | None]:
    """Corrected TTFT and ITL percentiles the model expects at ``desired`` under ``d`` (None if unbounded)."""
    if Role.BOTH in desired:
        n = desired[Role.BOTH]
        share_decode = d.generation_tokens_rate / max(1e-9, decode_capacity(profile, 1e9, d, q_itl, model))
        prefill_n = max(1e-9, n - share_decode) if n > 0 else 0.0
        # the prefill share of a time-shared fleet: its rate per equivalent replica, as one queue each
        ttft = (
            ttft_quantile(profile, 1, d.arrival_rate / prefill_n, d.mean_prompt, q_ttft, model)
            if prefill_n
            else math.inf
        )
        itl = predicted_itl(profile, n, d, q_itl, model)
    else:
        n_p, n_d = desired.get(Role.PREFILL, 0), desired.get(Role.DECODE, 0)
        ttft = ttft_quantile(profile, n_p, d.arrival_rate, d.mean_prompt, q_ttft, model) if n_p else math.inf
        itl = predicted_itl(profile, n_d, d, q_itl, model)
    t = ttft * c_ttft if math.isfinite(ttft) else None
    i = itl * c_itl if math.isfinite(itl) else None
    return t, i


RoleObservation = RoleObservation  # re-exported for type users of this module's signatures
