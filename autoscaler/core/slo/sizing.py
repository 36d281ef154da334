"""Feedforward sizing: per-replica capacity, each role's need, and the cost optimiser's plan.

Capacities are requests/s (prefill), output tokens/s (decode) or fleet shares (both) per replica; needs are in
the same unit summed over the role, so ``need / capacity`` is replicas. Prices are currency per hour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec, RoleSpec
from autoscaler.core.capacity import (
    Demand,
    decode_capacity,
    decode_concurrency,
    decode_slots,
    prefill_capacity,
    prefill_replicas,
)
from autoscaler.core.optimize import Option, Plan, RoleNeed, solve
from autoscaler.core.pid import PIDState
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.slo.context import StepContext
from autoscaler.core.slo.demand import DemandView
from autoscaler.core.types import Role, RoleObservation

__all__ = ["Accelerator", "Goals", "Sizing", "accelerator_options", "role_capacity", "size_fleet"]

#: replicas that stand for "more than any fleet" when the capacity model cannot size the demand
_BEYOND_ANY_FLEET = 1e7
#: the capacity offered to the optimiser for a role the model says never saturates
_UNBOUNDED_CAPACITY = 1e12


class Accelerator(NamedTuple):
    """An accelerator type the optimiser may choose: its profile, price per GPU-hour and availability cap
    (replicas; None: unbounded)."""

    name: str
    profile: PerformanceProfile
    price_per_gpu_hour: float
    max_replicas: int | None


def accelerator_options(
    spec: InferenceAutoscalerSpec, profile: PerformanceProfile, profiles: Mapping[str, PerformanceProfile]
) -> list[Accelerator]:
    """The allowed accelerators that have a profile (a type that cannot be sized is not offered); the spec's
    own accelerator when none is allowed or none has a profile."""
    own = [Accelerator(spec.cost.accelerator, profile, spec.cost.gpu_hour_price, None)]
    if not spec.cost.allowed_accelerators:
        return own
    out = []
    for opt in spec.cost.allowed_accelerators:
        prof = profiles.get(opt.profile or "") or profiles.get(opt.name)
        if prof is None:
            prof = profile if opt.name == spec.cost.accelerator else None
        if prof is None:
            continue
        out.append(Accelerator(opt.name, prof, opt.gpu_hour_price, opt.max_replicas))
    return out or own


@dataclass(frozen=True, slots=True)
class Goals:
    """The corrected latency goals the fleet is sized for, seconds.

    Attributes:
        ttft: the budgeted TTFT goal over the TTFT correction.
        itl: ``itl_headroom × ITL target`` over the ITL correction.
    """

    ttft: float
    itl: float


def _prefill_rate_per_replica(
    ctx: StepContext, prof: PerformanceProfile, ttft_target: float, demand: Demand
) -> float:
    """Requests/s per replica at this load (the pooled queue's capacity grows with the fleet). Beyond any
    fleet the model can size, a capacity that asks for far more than maxReplicas, so the plan saturates at
    the bound or the budget instead of reading as "no capacity needed"."""
    if demand.arrival_rate <= 0:
        return prefill_capacity(prof, ttft_target, demand.mean_prompt, ctx.q_ttft, ctx.model)
    n = prefill_replicas(prof, ttft_target, demand.arrival_rate, demand.mean_prompt, ctx.q_ttft, ctx.model)
    if n == math.inf:
        return demand.arrival_rate / _BEYOND_ANY_FLEET
    return demand.arrival_rate / n if n > 0 else 0.0


def role_capacity(
    ctx: StepContext, role: Role, prof: PerformanceProfile, goals: Goals, demand: Demand
) -> float:
    """One replica's capacity for ``role`` at ``goals`` under ``demand`` (an aggregated replica: the share of
    the load it carries, ``1 / (λ/λ* + g/g*)``)."""
    if role == Role.PREFILL:
        return _prefill_rate_per_replica(ctx, prof, goals.ttft, demand)
    if role == Role.DECODE:
        return decode_capacity(prof, goals.itl, demand, ctx.q_itl, ctx.model)
    lam = _prefill_rate_per_replica(ctx, prof, goals.ttft, demand)
    tok = decode_capacity(prof, goals.itl, demand, ctx.q_itl, ctx.model)
    if lam <= 0 or tok <= 0:
        return 0.0
    load = demand.arrival_rate / lam + demand.generation_tokens_rate / tok
    return 1.0 / load if load > 0 else math.inf


class _Need(NamedTuple):
    need: float
    floor_binds: bool
    reserve_binds: bool


def _prefill_need(
    ctx: StepContext, ro: RoleObservation, demand: Demand, factor: float, cap0: float, floor: float
) -> _Need:
    """Trimmed arrivals plus the queue drained over the lead time (``q·S/h`` replicas), at least the burst
    floor."""
    need = demand.arrival_rate * factor
    queued = ro.queue_depth or 0.0
    if queued and cap0 > 0:
        need += queued * ctx.profile.prefill_time_s(demand.mean_prompt) / ctx.lead_s * cap0
    if floor * cap0 > need:
        return _Need(floor * cap0, True, False)
    return _Need(need, False, False)


def _decode_need(
    ctx: StepContext, ro: RoleObservation, view: DemandView, goals: Goals, factor: float, cap0: float, floor: float
) -> _Need:
    """Output tokens/s: the trimmed demand or the trimmed current demand plus the untrimmed step reserve,
    enough slots for the sequences running (the batch limit, or the slot-margin concurrency once sequences
    queue), at least the burst floor, plus the queue drained over the lead time (``q·Ō/h``)."""
    demand, profile = view.provisioned, ctx.profile
    reserve_need = view.current.generation_tokens_rate * factor + view.decode_step
    need = max(demand.generation_tokens_rate * factor, reserve_need)
    queued = ro.queue_depth or 0.0
    if queued:
        m_star = decode_concurrency(profile, goals.itl, demand, ctx.q_itl, ctx.model)
    else:
        m_star = float(decode_slots(profile, goals.itl, demand, ctx.model))
    if m_star > 0 and cap0 > 0:
        need = max(need, (ro.running or 0.0) / m_star * cap0)
    reserve_binds = view.decode_step > 0 and need <= reserve_need
    floor_binds = floor * cap0 > need
    if floor_binds:
        need = floor * cap0
    return _Need(need + queued * demand.mean_output / ctx.lead_s, floor_binds, reserve_binds)


def _aggregated_need(
    ctx: StepContext, ro: RoleObservation, demand: Demand, goals: Goals, factor: float, cap0: float
) -> _Need:
    """Fleet shares: the trim, or the backlog (queued prefill work over the lead time, or running sequences
    over the slot-margin concurrency) if that is more."""
    need = factor if demand.arrival_rate > 0 else 0.0
    queued = ro.queue_depth or 0.0
    backlog = 0.0
    if queued:
        backlog += queued * ctx.profile.prefill_time_s(demand.mean_prompt) / ctx.lead_s
    m_star = decode_concurrency(ctx.profile, goals.itl, demand, ctx.q_itl, ctx.model)
    if m_star > 0:
        backlog = max(backlog, (ro.running or 0.0) / m_star)
    if backlog > 0 and cap0 > 0:
        need = max(need, backlog / max(cap0, 1e-9))
    return _Need(need, False, False)


@dataclass(frozen=True, slots=True)
class Sizing:
    """The optimiser's plan and what bound it.

    Attributes:
        accelerators: the options offered.
        needs: one :class:`RoleNeed` per configured role, in order.
        plan: the optimiser's answer.
        raw: the plan's replicas per role (before safety and stabilisation).
        budget: the hourly budget (None: unbounded).
        reserve_binds: decode's step reserve set its need.
        floor_binds: roles whose burst floor set their need.
    """

    accelerators: list[Accelerator]
    needs: list[RoleNeed]
    plan: Plan
    raw: dict[Role, int]
    budget: float | None
    reserve_binds: bool
    floor_binds: frozenset[Role]


def _role_options(ctx: StepContext, role: Role, rs: RoleSpec, accelerators: list[Accelerator], goals: Goals, demand: Demand) -> tuple[Option, ...]:
    opts = []
    for acc in accelerators:
        cap = role_capacity(ctx, role, acc.profile, goals, demand)
        opts.append(
            Option(acc.name, cap if math.isfinite(cap) else _UNBOUNDED_CAPACITY, acc.price_per_gpu_hour * rs.gpus_per_replica)
        )
    return tuple(opts)


def size_fleet(
    ctx: StepContext,
    roles: Mapping[Role, RoleObservation],
    view: DemandView,
    goals: Goals,
    pids: Mapping[Role, PIDState],
    floors: Mapping[Role, float],
) -> Sizing:
    """Each role's need (trimmed by its PID, ``exp(output)``) and the cheapest plan that serves them."""
    accelerators = accelerator_options(ctx.spec, ctx.profile, ctx.profiles)
    demand = view.provisioned
    needs: list[RoleNeed] = []
    reserve_binds, floor_binds = False, set()
    for role, rs in ctx.roles:
        factor = math.exp(pids[role].output)
        opts = _role_options(ctx, role, rs, accelerators, goals, demand)
        ro, cap0 = roles[role], opts[0].capacity
        if role == Role.PREFILL:
            need = _prefill_need(ctx, ro, demand, factor, cap0, floors[role])
        elif role == Role.DECODE:
            need = _decode_need(ctx, ro, view, goals, factor, cap0, floors[role])
            reserve_binds = need.reserve_binds
        else:
            need = _aggregated_need(ctx, ro, demand, goals, factor, cap0)
        if need.floor_binds:
            floor_binds.add(role)
        needs.append(RoleNeed(need.need, rs.min_replicas, rs.max_replicas, opts))
    caps = {acc.name: acc.max_replicas for acc in accelerators if acc.max_replicas is not None}
    budget = ctx.spec.cost.hourly_budget
    plan = solve(needs, caps, budget)
    raw = dict(zip([r for r, _ in ctx.roles], plan.totals(), strict=True))
    return Sizing(accelerators, needs, plan, raw, budget, reserve_binds, frozenset(floor_binds))
