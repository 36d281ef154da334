"""The burst floor: SLO misses that the minute-scale demand does not explain hold a fleet for a while.

A burst miss is an SLO miss at a ready fleet that the capacity model, fed the rate window's demand, says is
enough: the demand came in bursts shorter than the window, which per-minute rates flatten. A burst's queue
drains across the fleet, so its wait falls about as ``1/n``: the fleet that serves it within the goal is
``ready × wait / budget``, at most ``tuning.bursts.ratio_max`` times the fleet that missed. Misses the model
explains (a ramp), misses while replicas start, and prefill misses above ``utilization_max`` are the
forecaster's and the PID's, not bursts. docs/decisions/0005 records how the rule was arrived at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.core.capacity import Demand, decode_capacity, no_wait_ttft, ttft_quantile
from autoscaler.core.slo.conditions import Conditions
from autoscaler.core.slo.context import StepContext
from autoscaler.core.slo.state import Burst
from autoscaler.core.types import Role, RoleObservation

__all__ = ["BurstGoals", "burst_floor", "burst_window_s", "compact_bursts", "merge_burst", "record_bursts"]


def burst_window_s(ctx: StepContext) -> float:
    """How long a burst is remembered, seconds: ``window_leads`` lead times, at most ``season_share`` of
    the season (the burst level of the busy hours must not hold the quiet ones)."""
    tuning = ctx.tuning.bursts
    window = tuning.window_leads * ctx.lead_s
    season = ctx.spec.forecast.season_s
    if season > 0 and tuning.season_share > 0:
        window = min(window, tuning.season_share * season)
    return window


@dataclass(frozen=True, slots=True)
class BurstGoals:
    """The latency goals a burst is judged against.

    Attributes:
        ttft_goal: the budgeted TTFT goal, seconds.
        ttft_correction: the learned TTFT correction.
        itl_goal: the corrected ITL goal decode is sized for, seconds.
    """

    ttft_goal: float
    ttft_correction: float
    itl_goal: float


def _prefill_burst(
    ctx: StepContext, pre: RoleObservation | None, demand: Demand, goals: BurstGoals
) -> float | None:
    """Replicas a prefill burst miss asks for (None: not a burst)."""
    profile, model, tuning = ctx.profile, ctx.model, ctx.tuning.bursts
    if not (
        pre is not None
        and pre.ready > 0
        and pre.ttft is not None
        and pre.ttft > ctx.ttft_target_s
        and demand.arrival_rate * profile.prefill_time_s(demand.mean_prompt) / pre.ready < tuning.utilization_max
    ):
        return None
    floor = no_wait_ttft(profile, demand.mean_prompt, ctx.q_ttft, model)
    predicted = ttft_quantile(profile, pre.ready, demand.arrival_rate, demand.mean_prompt, ctx.q_ttft, model)
    explained = goals.ttft_correction * predicted > goals.ttft_goal
    if goals.ttft_goal <= floor or explained:
        return None
    ratio = min(tuning.ratio_max, (pre.ttft - floor) / (goals.ttft_goal - floor))
    return pre.ready * ratio


def _decode_burst(ctx: StepContext, dec: RoleObservation, demand: Demand, goals: BurstGoals) -> float | None:
    """Replicas a decode slot queue the model does not explain asks for (None: explained)."""
    per_replica = decode_capacity(ctx.profile, goals.itl_goal, demand, ctx.q_itl, ctx.model)
    if per_replica <= 0 or demand.generation_tokens_rate / per_replica > dec.ready:
        return None
    running = max(1.0, dec.running or 0.0)
    ratio = min(ctx.tuning.bursts.ratio_max, (running + (dec.queue_depth or 0.0)) / running)
    return dec.ready * ratio


def record_bursts(
    ctx: StepContext,
    events: tuple[Burst, ...],
    roles: Mapping[Role, RoleObservation],
    demand: Demand,
    conditions: Conditions,
    goals: BurstGoals,
    now: float,
) -> tuple[Burst, ...]:
    """The bursts of the last :func:`burst_window_s`, with this step's misses added (a miss within one lead
    time of the role's last burst is the same burst: the fleet could not answer it yet)."""
    window_s = burst_window_s(ctx)
    min_events = ctx.tuning.bursts.min_events
    kept = tuple(e for e in events if now - e[0] < window_s) if window_s > 0 else ()
    if window_s <= 0 or (not conditions.learning and not conditions.decode_congested):
        return compact_bursts(kept, min_events)
    added: list[Burst] = []
    if conditions.learning:
        size = _prefill_burst(ctx, roles.get(Role.PREFILL), demand, goals)
        if size is not None:
            added.append(Burst(now, Role.PREFILL, size))
    dec = roles.get(Role.DECODE)
    steady_fleet = all(ro.starting == 0 and ro.trustworthy for ro in roles.values())
    if conditions.decode_congested and steady_fleet and dec is not None and dec.ready > 0:
        size = _decode_burst(ctx, dec, demand, goals)
        if size is not None:
            added.append(Burst(now, Role.DECODE, size))
    for event in added:
        kept = merge_burst(kept, event, ctx.lead_s)
    return compact_bursts(kept, min_events)


def merge_burst(bursts: tuple[Burst, ...], event: Burst, gap_s: float) -> tuple[Burst, ...]:
    """``bursts`` with ``event`` added: folded into the role's last burst (keeping the larger fleet, at the
    newer time) when within ``gap_s`` of it."""
    t, role, size = event
    for k in range(len(bursts) - 1, -1, -1):
        last_t, last_role, last_size = bursts[k]
        if last_role != role:
            continue
        if t - last_t <= gap_s:
            return (*bursts[:k], *bursts[k + 1 :], Burst(t, role, max(size, last_size)))
        break
    return (*bursts, event)


def compact_bursts(events: tuple[Burst, ...], min_events: int) -> tuple[Burst, ...]:
    """The bursts :func:`burst_floor` can still need, oldest first: per role, those with fewer than
    ``min_events`` later bursts at least as large (any trailing window that holds one holds those later ones
    too, so its ``min_events``-th largest never comes from it)."""
    k = max(1, min_events)
    kept: list[Burst] = []
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


def burst_floor(events: tuple[Burst, ...], role: Role, min_events: int) -> float:
    """The role's burst floor, replicas: the ``min_events``-th largest remembered burst of the role (0 with
    fewer). A level that separate bursts reach again is a pattern; one burst can be a misread ramp."""
    k = max(1, min_events)
    sizes = sorted((size for _t, r, size in events if r == role), reverse=True)
    return sizes[k - 1] if len(sizes) >= k else 0.0
