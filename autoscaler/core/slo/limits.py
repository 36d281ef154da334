"""Limits on the plan: the scale-down guard, tolerance, HPA-behaviour stabilisation, rate limits, budget.

Replica counts are integers; prices are currency per hour; times are Unix seconds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from autoscaler.core.capacity import (
    Demand,
    budgeted_ttft,
    decode_capacity,
    predicted_itl,
    prefill_replicas,
    ttft_quantile,
)
from autoscaler.core.pid import PIDState
from autoscaler.core.safety import guard_scale_down, role_untrusted_reason
from autoscaler.core.slo.context import StepContext
from autoscaler.core.slo.sizing import Sizing
from autoscaler.core.slo.state import RoleState, SLOState
from autoscaler.core.stabilize import (
    DirectionRules,
    StabilizationState,
    behavior_rules,
    rate_limit,
    record_scale,
    stabilize_recommendation,
    within_tolerance,
)
from autoscaler.core.types import Observation, Reason, ReasonCode, Role

__all__ = ["Corrections", "Limited", "fit_budget", "limit"]


@dataclass(frozen=True, slots=True)
class Corrections:
    """The learned observed/predicted latency ratios after this step (1 = the profile is right)."""

    ttft: float
    itl: float


@dataclass(frozen=True, slots=True)
class Limited:
    """The plan after every limit.

    Attributes:
        desired: replicas per role.
        roles: per-role state for the next step.
        reasons: why a role's count differs from the plan, in the order the limits applied.
    """

    desired: dict[Role, int]
    roles: dict[Role, RoleState]
    reasons: list[Reason]


def _holds(ctx: StepContext, check: Demand, c: Corrections, role: Role, n: int) -> bool:
    """Whether ``n`` replicas of ``role`` are predicted to hold the unpadded SLO under ``check``."""
    profile, model, q_ttft, q_itl = ctx.profile, ctx.model, ctx.q_ttft, ctx.q_itl
    ttft_t, itl_t = ctx.ttft_target_s, ctx.itl_target_s
    if n <= 0:
        return check.arrival_rate <= 0
    if role == Role.PREFILL:
        # the unpadded target (headroom 1), or the floor plus slack when the target is below the floor
        goal = budgeted_ttft(profile, ttft_t, 1.0, check.mean_prompt, q_ttft, model)
        return c.ttft * ttft_quantile(profile, n, check.arrival_rate, check.mean_prompt, q_ttft, model) <= goal
    if role == Role.DECODE:
        return c.itl * predicted_itl(profile, n, check, q_itl, model) <= itl_t
    n_pre = prefill_replicas(profile, ttft_t / c.ttft, check.arrival_rate, check.mean_prompt, q_ttft, model)
    lam = check.arrival_rate / n_pre if 0 < n_pre < math.inf else 0.0
    tok = decode_capacity(profile, itl_t / c.itl, check, q_itl, model)
    return lam > 0 and tok > 0 and check.arrival_rate / lam + check.generation_tokens_rate / tok <= n


def _stabilise(
    rst: StabilizationState,
    role: Role,
    proposal: int,
    current: int,
    now: float,
    rules: tuple[DirectionRules, DirectionRules],
    reasons: list[Reason],
) -> tuple[int, StabilizationState]:
    """Tolerance, then the stabilisation window; a reason for each that changed the proposal."""
    up_rules, down_rules = rules
    direction = up_rules if proposal > current else down_rules
    if proposal != current and within_tolerance(proposal, current, direction.tolerance):
        reasons.append(
            Reason(ReasonCode.WITHIN_TOLERANCE, f"{current}→{proposal} within tolerance {direction.tolerance:g}", role)
        )
        proposal = current
    stabilized, stab = stabilize_recommendation(rst, proposal, current, now, up_rules, down_rules)
    if stabilized != proposal:
        reasons.append(Reason(ReasonCode.STABILIZED, f"recommendation {proposal} stabilised to {stabilized}", role))
    return stabilized, stab


def limit(
    ctx: StepContext,
    obs: Observation,
    state: SLOState,
    sizing: Sizing,
    pids: Mapping[Role, PIDState],
    check: Demand,
    corrections: Corrections,
    history_ok: bool,
    now: float,
) -> Limited:
    """Apply the limits to the plan role by role, then fit the budget.

    The scale-down guard checks the larger of current and provisioned demand (``check``) at the unpadded
    targets; a role without a metrics window of history (``history_ok`` false) is held like untrusted data."""
    rules = behavior_rules(ctx.spec.behavior)
    longest = max([p[2] for p in rules[0].policies + rules[1].policies] or [15.0])
    reasons: list[Reason] = []
    desired: dict[Role, int] = {}
    new_roles: dict[Role, RoleState] = {}
    for role, rs in ctx.roles:
        ro = obs.roles[role]
        rst = state.roles.get(role, RoleState())
        current, raw = ro.replicas, sizing.raw[role]
        untrusted = role_untrusted_reason(obs, role, ro)
        if untrusted is None and not history_ok:
            untrusted = Reason(ReasonCode.HOLD_ON_BAD_DATA, "less than one metrics window of history", role)
        holds = functools.partial(_holds, ctx, check, corrections, role)
        proposal, guard = guard_scale_down(raw, current, untrusted, holds, role)
        reasons.extend(guard)
        stabilized, stab = _stabilise(rst.stabilization, role, proposal, current, now, rules, reasons)
        final, rl = rate_limit(stab, stabilized, current, rs.min_replicas, rs.max_replicas, now, *rules, role)
        reasons.extend(rl)
        stab = record_scale(stab, current, final, now, longest)
        desired[role] = final
        new_roles[role] = RoleState(pids[role], stab, limited=final != raw)
    if sizing.budget is not None:
        desired = _apply_budget(ctx, obs, sizing, sizing.budget, desired, new_roles, reasons)
    return Limited(desired, new_roles, reasons)


def _apply_budget(
    ctx: StepContext,
    obs: Observation,
    sizing: Sizing,
    budget: float,
    desired: dict[Role, int],
    new_roles: dict[Role, RoleState],
    reasons: list[Reason],
) -> dict[Role, int]:
    """The budget wins over the scale-down guard and stabilisation: trim the roles above the plan that fits
    it (scale-ups first, then roles held above the plan on trusted data; a role on untrusted data never goes
    below its current count). Trimmed roles are marked limited."""
    roles = ctx.roles
    role_price = {role: sizing.needs[k].options[0].price_per_hour for k, (role, _rs) in enumerate(roles)}
    trimmed = fit_budget(
        desired,
        sizing.raw,
        {r: obs.roles[r].replicas for r, _ in roles},
        {r: rs.min_replicas for r, rs in roles},
        {r: role_untrusted_reason(obs, r, obs.roles[r]) is not None for r, _ in roles},
        role_price,
        budget,
    )
    if trimmed == desired:
        return desired
    changes = ", ".join(f"{r.value} {desired[r]}→{trimmed[r]}" for r, _ in roles if trimmed[r] != desired[r])
    reasons.append(Reason(ReasonCode.BUDGET_LIMITED, "trimmed to the hourly budget: " + changes))
    for r in trimmed:
        new_roles[r] = replace(new_roles[r], limited=True)
    return trimmed


def fit_budget(
    desired: Mapping[Role, int],
    plan: Mapping[Role, int],
    current: Mapping[Role, int],
    lo: Mapping[Role, int],
    untrusted: Mapping[Role, bool],
    price: Mapping[Role, float],
    budget: float,
) -> dict[Role, int]:
    """Lower ``desired`` until its cost (Σ price·n, per hour) fits ``budget``: first scale-ups back towards
    the current count, then trusted roles down towards the plan, then trusted roles down to their minimum.
    Invariant: a role on untrusted data never goes below ``min(desired, current)``."""
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
