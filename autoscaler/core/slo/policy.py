"""The SLO policy: ``decide`` composes the stages of one control step.

observe → forecast → provision demand → assess conditions → learn corrections → PID trims → record bursts →
size the fleet → apply limits → explain. ``decide`` is pure: equal inputs give equal outputs, everything
learned is in the returned :class:`SLOState`. docs/control.md has the equations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.capacity import Demand, budgeted_ttft
from autoscaler.core.forecast import initial_series
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.safety import clamp, fallback_replicas
from autoscaler.core.slo.bursts import BurstGoals, burst_floor, record_bursts
from autoscaler.core.slo.conditions import assess
from autoscaler.core.slo.context import StepContext, spec_roles, step_context
from autoscaler.core.slo.demand import forecast_demand, provision
from autoscaler.core.slo.explain import (
    Explanation,
    cost_and_accelerators,
    predict,
    scale_reasons,
    slo_reasons,
)
from autoscaler.core.slo.learning import learn_corrections, pid_trims
from autoscaler.core.slo.limits import Corrections, limit
from autoscaler.core.slo.sizing import Goals, size_fleet
from autoscaler.core.slo.state import RoleState, SLOState
from autoscaler.core.slo.tuning import Tuning
from autoscaler.core.types import Decision, Observation, Reason, ReasonCode

__all__ = ["SLOPolicy", "decide", "initial_state"]


def initial_state(spec: InferenceAutoscalerSpec, now: float) -> SLOState:
    """The state before the first observation."""
    del now
    return SLOState(
        arrivals=initial_series(),
        prompt_tokens=initial_series(),
        output_tokens=initial_series(),
        roles={role: RoleState() for role, _ in spec_roles(spec)},
    )


def hold_decision(
    spec: InferenceAutoscalerSpec, obs: Observation, state: SLOState, now: float, reason: Reason
) -> tuple[Decision, SLOState]:
    """Keep every role at its current count (clamped to its bounds) for lack of usable data; after
    ``spec.fallback.afterFailures`` such steps in a row, apply the configured fallback."""
    failures = state.failures + 1
    fallback = failures >= spec.fallback.after_failures
    desired = {}
    for role, rs in spec_roles(spec):
        ro = obs.roles.get(role)
        current = ro.replicas if ro is not None else rs.min_replicas
        desired[role] = (
            fallback_replicas(spec, role, current) if fallback else clamp(current, rs.min_replicas, rs.max_replicas)
        )
    reasons = [reason]
    if fallback:
        why = f"{failures} intervals without usable metrics: fallback {spec.fallback.policy.value}"
        reasons.insert(0, Reason(ReasonCode.FALLBACK, why))
    return Decision(desired=desired, reasons=tuple(reasons)), replace(state, failures=failures, last_time=now)


def _unusable(ctx: StepContext, obs: Observation) -> Reason | None:
    """Why the observation cannot be used at all (the source failed, or a configured role is missing)."""
    if not obs.source_ok:
        return Reason(ReasonCode.METRICS_UNAVAILABLE, f"metrics source failed: {obs.error or 'no detail'}")
    missing = [role.value for role, _ in ctx.roles if role not in obs.roles]
    if missing:
        return Reason(ReasonCode.METRICS_UNAVAILABLE, f"no observation for role(s) {', '.join(missing)}")
    return None


def _unknown_demand() -> Reason:
    return Reason(ReasonCode.METRICS_UNAVAILABLE, "demand (arrival, prompt or output token rate) unknown")


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
    """One control step at ``now`` (Unix seconds). Pure and deterministic."""
    ctx = step_context(spec, profile, profiles or {}, tuning or Tuning())
    roles = {role: ro.sanitized() for role, ro in observation.roles.items()}
    obs = Observation(observation.time, roles, observation.source_ok, observation.error)
    unusable = _unusable(ctx, obs)
    if unusable is not None:
        return hold_decision(spec, obs, state, now, unusable)
    fc = forecast_demand(ctx, state, roles, now)
    if fc.current is None:
        series = replace(state, arrivals=fc.arrivals, prompt_tokens=fc.prompt_tokens, output_tokens=fc.output_tokens)
        return hold_decision(spec, obs, series, now, _unknown_demand())
    view = provision(ctx, state, roles, fc, now)
    demand, current = view.provisioned, view.current
    conditions = assess(roles, current, ctx.tuning.learning.min_rate, ctx.metrics_window_s)
    c_ttft, c_itl = learn_corrections(ctx, state, roles, current, conditions)
    ttft_goal = budgeted_ttft(profile, ctx.ttft_target_s, ctx.tuning.headroom, demand.mean_prompt, ctx.q_ttft, ctx.model)
    pids = pid_trims(ctx, state, roles, conditions, ttft_goal, now)
    goals = Goals(ttft=ttft_goal / c_ttft, itl=ctx.itl_goal_s / c_itl)
    bursts = record_bursts(ctx, state.bursts, roles, current, conditions, BurstGoals(ttft_goal, c_ttft, goals.itl), now)
    floors = {role: burst_floor(bursts, role, ctx.tuning.bursts.min_events) for role, _ in ctx.roles}
    sizing = size_fleet(ctx, roles, view, goals, pids, floors)
    history_ok = fc.arrivals.time is not None and now - view.first_seen >= ctx.metrics_window_s
    corrections = Corrections(c_ttft, c_itl)
    limited = limit(ctx, obs, state, sizing, pids, _check_demand(demand, current), corrections, history_ok, now)
    desired = limited.desired
    reasons = [*scale_reasons(ctx, Explanation(obs, desired, pids, fc, view, sizing, floors)), *limited.reasons]
    predicted = predict(profile, desired, current, ctx.q_ttft, ctx.q_itl, ctx.model, corrections)
    reasons += slo_reasons(ctx, predicted, reasons)
    cost, accelerators = cost_and_accelerators(ctx, sizing, desired)
    decision = Decision(
        desired=desired,
        reasons=tuple(reasons),
        predicted_ttft=predicted[0],
        predicted_itl=predicted[1],
        forecast=fc.snapshot(),
        cost_per_hour=cost,
        accelerators=accelerators if len(sizing.accelerators) > 1 else {},
    )
    new_state = SLOState(
        arrivals=fc.arrivals, prompt_tokens=fc.prompt_tokens, output_tokens=fc.output_tokens,
        ttft_correction=c_ttft, itl_correction=c_itl, roles=limited.roles, failures=0, last_time=now,
        first_time=view.first_seen, recent=view.recent, decode_step=view.step_memory, bursts=bursts,
    )
    return decision, new_state


def _check_demand(provisioned: Demand, current: Demand) -> Demand:
    """The demand the scale-down guard checks: per signal, the larger of provisioned and current."""
    return Demand(
        max(provisioned.arrival_rate, current.arrival_rate),
        max(provisioned.prompt_tokens_rate, current.prompt_tokens_rate),
        max(provisioned.generation_tokens_rate, current.generation_tokens_rate),
    )


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
        """One control step (see :func:`decide`)."""
        return decide(spec, observation, state, now, profile=self.profile, profiles=self.profiles, tuning=self.tuning)
