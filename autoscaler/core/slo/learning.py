"""Model correction: the learned observed/predicted latency ratios and the PID trim per role.

Corrections are dimensionless ratios (1 = the profile is right, never below ``tuning.learning.correction_floor``);
a PID output is the log of a multiplicative trim on the role's demand.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.core.capacity import Demand, predicted_itl, ttft_quantile, update_correction
from autoscaler.core.pid import PIDState, pid_step
from autoscaler.core.slo.conditions import Conditions
from autoscaler.core.slo.context import StepContext
from autoscaler.core.slo.state import RoleState, SLOState
from autoscaler.core.types import Role, RoleObservation

__all__ = ["learn_corrections", "pid_trims"]


def learn_corrections(
    ctx: StepContext,
    state: SLOState,
    roles: Mapping[Role, RoleObservation],
    current: Demand,
    conditions: Conditions,
) -> tuple[float, float]:
    """The TTFT and ITL corrections after this step: trained only at a busy, steady fleet, and only by
    latencies of at least ``ttft_share`` / ``itl_share`` of their targets (quiet minutes say nothing about
    the fleet near the target)."""
    c_ttft, c_itl = state.ttft_correction, state.itl_correction
    if not conditions.learning:
        return c_ttft, c_itl
    learn, profile, model = ctx.tuning.learning, ctx.profile, ctx.model
    for role, ro in roles.items():
        if ro.ready <= 0:
            continue
        if role in (Role.PREFILL, Role.BOTH) and ro.ttft is not None and ro.ttft >= learn.ttft_share * ctx.ttft_target_s:
            pred = ttft_quantile(profile, ro.ready, current.arrival_rate, current.mean_prompt, ctx.q_ttft, model)
            c_ttft = update_correction(c_ttft, ro.ttft, pred, learn.correction_gain, lo=learn.correction_floor)
        if role in (Role.DECODE, Role.BOTH) and ro.itl is not None and ro.itl >= learn.itl_share * ctx.itl_target_s:
            pred = predicted_itl(profile, ro.ready, current, ctx.q_itl, model)
            c_itl = update_correction(c_itl, ro.itl, pred, learn.correction_gain, lo=learn.correction_floor)
    return c_ttft, c_itl


def _measurement(
    ctx: StepContext,
    role: Role,
    roles: Mapping[Role, RoleObservation],
    ttft_goal: float,
    congested: bool,
) -> tuple[float | None, float]:
    """``(measurement, set point)`` of a role's PID.

    Prefill: TTFT against the budgeted TTFT goal, unmeasured while decode is congested (TTFT then waits for a
    decode slot). Decode: ITL against ``itl_headroom × target``, raised by the TTFT's lateness while decode
    is congested (the decode role is short). Both: the larger latency/target ratio against the headroom."""
    ro = roles[role]
    if role == Role.PREFILL:
        return (None if congested else ro.ttft), ttft_goal
    if role == Role.DECODE:
        meas, sp = ro.itl, ctx.tuning.itl_headroom * ctx.itl_target_s
        pre = roles.get(Role.PREFILL)
        if congested and pre is not None and pre.ttft is not None and meas is not None:
            meas = max(meas, sp * pre.ttft / ttft_goal)
        return meas, sp
    ratios = [
        v
        for v in (
            (ro.ttft / ctx.ttft_target_s) if ro.ttft else None,
            (ro.itl / ctx.itl_target_s) if ro.itl else None,
        )
        if v is not None
    ]
    return (max(ratios) if ratios else None), ctx.tuning.headroom


def pid_trims(
    ctx: StepContext,
    state: SLOState,
    roles: Mapping[Role, RoleObservation],
    conditions: Conditions,
    ttft_goal: float,
    now: float,
) -> dict[Role, PIDState]:
    """One PID step per configured role on its latency (:func:`_measurement`); held while the role's data is
    untrusted, replicas start, its last output was limited, or the fleet is not busy (anti-windup)."""
    pids: dict[Role, PIDState] = {}
    for role, _ in ctx.roles:
        rst = state.roles.get(role, RoleState())
        ro = roles[role]
        hold = (not ro.trustworthy) or ro.starting > 0 or rst.limited or not conditions.busy
        meas, sp = _measurement(ctx, role, roles, ttft_goal, conditions.decode_congested)
        pids[role] = pid_step(ctx.tuning.pid, rst.pid, meas, sp, now, hold=hold)
    return pids
