"""Demand: the observed signals, their forecasts, and the demand the fleet is provisioned for.

Rates are requests/s and tokens/s; times are Unix seconds; windows are seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from autoscaler.core.capacity import Demand
from autoscaler.core.forecast import Forecast, SeriesState, forecast, update
from autoscaler.core.slo.conditions import decode_congested
from autoscaler.core.slo.context import StepContext
from autoscaler.core.slo.state import Climb, DemandSample, SLOState, StepMemory
from autoscaler.core.types import ForecastSnapshot, Role, RoleObservation

__all__ = [
    "DemandView",
    "Forecasts",
    "Windows",
    "asked_output_rate",
    "climbs",
    "demand_signals",
    "forecast_demand",
    "held",
    "provision",
    "provisioned_demand",
    "rise",
    "update_step_memory",
]

Signal = Callable[[DemandSample], float]


def demand_signals(
    roles: Mapping[Role, RoleObservation],
) -> tuple[float | None, float | None, float | None]:
    """``(requests/s, prompt tokens/s, output tokens/s)`` observed: arrivals and prompts at the front role
    (both, else prefill; arrivals fall back to decode), output tokens at the back role (both, else decode)."""
    front = roles.get(Role.BOTH) or roles.get(Role.PREFILL)
    back = roles.get(Role.BOTH) or roles.get(Role.DECODE)
    arrival = front.arrival_rate if front is not None else None
    if arrival is None and back is not None:
        arrival = back.arrival_rate
    prompt = front.prompt_tokens_rate if front is not None else None
    gen = back.generation_tokens_rate if back is not None else None
    return arrival, prompt, gen


def _upper(current: float | None, fc: Forecast | None) -> float | None:
    if fc is None:
        return current
    return max(current or 0.0, fc.upper)


@dataclass(frozen=True, slots=True)
class Forecasts:
    """The demand series updated with this step's signals, and what they forecast.

    Attributes:
        arrivals, prompt_tokens, output_tokens: the updated series.
        arrival: the arrival-rate forecast (None until the forecaster has one).
        upper: per signal, the larger of the observed value and the forecast's upper value (None: unknown).
        current: the observed demand (unknown signals read 0); None when any upper value is unknown.
    """

    arrivals: SeriesState
    prompt_tokens: SeriesState
    output_tokens: SeriesState
    arrival: Forecast | None
    upper: tuple[float | None, float | None, float | None]
    current: Demand | None

    def snapshot(self) -> ForecastSnapshot | None:
        """The forecast the plan is sized for, for the decision (None without an arrival forecast)."""
        a_up, p_up, g_up = self.upper
        if self.arrival is None or a_up is None or p_up is None or g_up is None:
            return None
        fc = self.arrival
        return ForecastSnapshot(a_up, fc.mean, p_up, g_up, fc.horizon_s, fc.method)


def forecast_demand(
    ctx: StepContext, state: SLOState, roles: Mapping[Role, RoleObservation], now: float
) -> Forecasts:
    """Feed the observed signals into their series and forecast each over the lead time."""
    cfg = ctx.forecast
    arrival, prompt, gen = demand_signals(roles)
    arrivals = update(state.arrivals, cfg, now, arrival) if arrival is not None else state.arrivals
    prompts = update(state.prompt_tokens, cfg, now, prompt) if prompt is not None else state.prompt_tokens
    outputs = update(state.output_tokens, cfg, now, gen) if gen is not None else state.output_tokens
    f_arr, f_pr, f_gen = forecast(arrivals, cfg), forecast(prompts, cfg), forecast(outputs, cfg)
    upper = (_upper(arrival, f_arr), _upper(prompt, f_pr), _upper(gen, f_gen))
    known = all(u is not None for u in upper)
    current = Demand(arrival or 0.0, prompt or 0.0, gen or 0.0) if known else None
    return Forecasts(arrivals, prompts, outputs, f_arr, upper, current)


def asked_output_rate(roles: Mapping[Role, RoleObservation], served: float, ratio_max: float) -> float:
    """Output tokens/s asked of the decode role, from the ``served`` rate.

    While sequences wait for a slot the served rate is the fleet's throughput, not the demand, so it is
    scaled by the sequences in the system over those running, at most ``ratio_max``. Invariant: the result is
    finite whenever ``served`` is (a served rate near the float limit stays the served rate)."""
    dec = roles.get(Role.DECODE)
    if dec is None or not decode_congested(dec) or not dec.running:
        return served
    asked = served * min(ratio_max, (dec.running + (dec.queue_depth or 0.0)) / dec.running)
    return asked if math.isfinite(asked) else served


def held(
    recent: tuple[DemandSample, ...], t_now: float, hold_s: float, idle_rate: float | None
) -> list[DemandSample]:
    """The samples of the peak hold: the last ``hold_s`` seconds, where time with fewer than ``idle_rate``
    requests/s does not count (``None``: wall time). Newest first when ``idle_rate`` is set."""
    if idle_rate is None:
        return [r for r in recent if t_now - r[0] < hold_s]
    out: list[DemandSample] = []
    busy_s, later = 0.0, t_now
    for r in reversed(recent):
        if r[1] >= idle_rate:
            busy_s += later - r[0]
        later = r[0]
        if busy_s >= hold_s:
            break
        out.append(r)
    return out


def climbs(samples: tuple[DemandSample, ...], value: Signal, lead_s: float) -> list[Climb]:
    """``(t, max(value over (t, t + lead]) − value(t), at least 0)`` for each sample with a full lead time
    after it (up to the last sample), oldest first."""
    values = [value(r) for r in samples]
    times = [r[0] for r in samples]
    out: list[Climb] = []
    j = 0
    for i, t in enumerate(times):
        if t + lead_s > times[-1]:
            break
        j = max(j, i + 1)
        while j < len(times) and times[j] <= t + lead_s:
            j += 1
        out.append(Climb(t, max(0.0, max(values[i + 1 : j], default=values[i]) - values[i])))
    return out


def rise(samples: tuple[DemandSample, ...], value: Signal, lead_s: float, quantile: float) -> float:
    """``quantile`` of the samples' climbs within one lead time (linear interpolation; 0 when fewer than
    four climbs)."""
    rises = [climb.rise for climb in climbs(samples, value, lead_s)]
    if len(rises) < 4:
        return 0.0
    rises.sort()
    pos = quantile * (len(rises) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(rises) - 1)
    return rises[lo] + (rises[hi] - rises[lo]) * (pos - lo)


def update_step_memory(
    memory: StepMemory,
    recent: tuple[DemandSample, ...],
    value: Signal,
    *,
    now: float,
    lead_s: float,
    window_s: float,
    recorded: bool,
) -> tuple[StepMemory, float]:
    """Record the climbs of the samples of ``recent`` that have a full lead time after them, forget those
    older than ``window_s``, and return the largest climb left.

    Equals ``rise(window, value, lead_s, 1.0)`` over the samples of the last ``window_s`` seconds without
    keeping them; it reads 0 until eight samples and four climbs of the window are recorded (``recorded``:
    ``recent[-1]`` is new this step)."""
    kept = list(memory.climbs)
    climb_times = list(memory.last_climb_times)
    done = memory.done_through
    for climb in climbs(recent, value, lead_s) if recent else []:
        if done is None or climb.time_s > done:
            while kept and kept[-1].rise <= climb.rise:
                kept.pop()
            kept.append(climb)
            climb_times = [*climb_times, climb.time_s][-4:]
            done = climb.time_s
    kept = [c for c in kept if now - c.time_s < window_s]
    sample_times = memory.last_sample_times
    if recorded and recent:
        sample_times = (*sample_times, recent[-1][0])[-8:]
    new = StepMemory(tuple(kept), done, tuple(climb_times), sample_times)
    enough = (
        len(sample_times) == 8
        and now - sample_times[0] < window_s
        and len(climb_times) == 4
        and now - climb_times[0] < window_s
    )
    return new, (kept[0].rise if enough and kept else 0.0)


@dataclass(frozen=True, slots=True)
class Windows:
    """The demand memory's windows, seconds (0: off).

    Attributes:
        hold_s: the peak hold.
        rise_s: the rise band's window.
        step_s: the decode step reserve's window (0 without forecasting).
        keep_s: how long samples stay in ``SLOState.recent``: the longest of the above, and two lead times
            while the step reserve is on (its compact memory needs a lead time after each sample).
    """

    hold_s: float
    rise_s: float
    step_s: float
    keep_s: float

    @classmethod
    def of(cls, ctx: StepContext) -> Windows:
        """The windows of this step's lead time."""
        lead, reserve = ctx.lead_s, ctx.tuning.reserve
        hold_s = reserve.peak_hold_leads * lead
        rise_s = reserve.rise_window_leads * lead
        step_s = reserve.decode_step_window_leads * lead if ctx.forecast.method != "off" else 0.0
        keep_s = max(hold_s, rise_s, 2.0 * lead if step_s > 0 else 0.0)
        return cls(hold_s, rise_s, step_s, keep_s)


def provisioned_demand(
    current: Demand,
    recent: tuple[DemandSample, ...],
    upper: tuple[float, float, float],
    *,
    t_now: float,
    windows: Windows,
    lead_s: float,
    rise_quantile: float,
    idle_rate: float | None = None,
) -> Demand:
    """The demand to size for: the largest of the forecast's ``upper`` values, the peak of the hold window,
    and the current demand plus the ``rise_quantile`` of the climbs within one lead time of the rise window.

    Requests/s and prompt tokens/s are combined through one mean prompt length, that of the hold window
    (Σ prompt / Σ requests), so separate upper bands of the two series cannot inflate the mean prompt.
    Decode is sized for the held peak of output tokens/s asked for, not served."""
    a_up, p_up, g_up = upper
    hold = held(recent, t_now, windows.hold_s, idle_rate) or [DemandSample.of(t_now, current)]
    arrivals = sum(r[1] for r in hold)
    prompts = sum(r[2] for r in hold)
    mean_prompt = prompts / arrivals if arrivals > 0 else current.mean_prompt

    def work(r: DemandSample) -> float:
        # requests/s, or the prompt tokens/s in requests of the mean length if that is more
        return max(r[1], r[2] / mean_prompt) if mean_prompt > 0 else r[1]

    rates = [a_up, max(work(r) for r in hold)]
    if mean_prompt > 0:
        rates.append(p_up / mean_prompt)
    gens = [g_up, max(r[4] for r in hold)]
    window = tuple(r for r in recent if t_now - r[0] < windows.rise_s)
    if rise_quantile > 0 and len(window) >= 8:
        now_sample = DemandSample.of(t_now, current)
        rates.append(work(now_sample) + rise(window, work, lead_s, rise_quantile))
        gens.append(current.generation_tokens_rate + rise(window, lambda r: r[3], lead_s, rise_quantile))
    lam = max(rates)
    return Demand(lam, lam * mean_prompt, max(gens))


@dataclass(frozen=True, slots=True)
class DemandView:
    """This step's demand.

    Attributes:
        current: observed demand.
        provisioned: the demand the fleet is sized for (:func:`provisioned_demand`).
        recent: the demand samples kept for the next step.
        step_memory: the decode step reserve's memory for the next step.
        decode_step: the decode step reserve, output tokens/s (0 when off or not yet trusted).
        windows: the windows used.
        first_seen: time of the first usable observation, Unix seconds.
    """

    current: Demand
    provisioned: Demand
    recent: tuple[DemandSample, ...]
    step_memory: StepMemory
    decode_step: float
    windows: Windows
    first_seen: float


def provision(
    ctx: StepContext,
    state: SLOState,
    roles: Mapping[Role, RoleObservation],
    forecasts: Forecasts,
    now: float,
) -> DemandView:
    """Record this step's sample and size the demand to provision for.

    Samples are recorded only once a full metrics window has passed since the first observation: rates over
    a window reaching back before the first scrape are extrapolated from part of it and read low, and their
    climb to the true level is not a rise of demand. Every sample is seen by the step memory once more as it
    leaves ``recent``."""
    current = forecasts.current
    a_up, p_up, g_up = forecasts.upper
    assert current is not None and a_up is not None and p_up is not None and g_up is not None
    tuning, lead = ctx.tuning, ctx.lead_s
    windows = Windows.of(ctx)
    first_seen = state.first_time if state.first_time is not None else now
    recorded = windows.keep_s > 0 and now - first_seen >= ctx.metrics_window_s
    asked = asked_output_rate(roles, current.generation_tokens_rate, tuning.bursts.ratio_max)
    seen = (*state.recent, DemandSample.of(now, current, asked)) if recorded else state.recent
    recent = tuple(r for r in seen if now - r[0] < windows.keep_s) if windows.keep_s > 0 else ()
    # the rise band forecasts the next lead time's climb: off with forecasting
    forecasting = tuning.reserve.rise_window_leads > 0 and ctx.forecast.method != "off"
    provisioned = provisioned_demand(
        current,
        recent,
        (a_up, p_up, g_up),
        t_now=now,
        windows=windows,
        lead_s=lead,
        rise_quantile=ctx.spec.forecast.quantile if forecasting else 0.0,
        idle_rate=tuning.learning.min_rate,
    )
    step_memory, decode_step = StepMemory(), 0.0
    if windows.step_s > 0:
        step_memory, decode_step = update_step_memory(
            state.decode_step, seen, lambda r: r[3], now=now, lead_s=lead, window_s=windows.step_s,
            recorded=recorded,
        )
    return DemandView(current, provisioned, recent, step_memory, decode_step, windows, first_seen)
