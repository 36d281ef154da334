"""The decision's explanation: reasons (most important first), predicted latencies, cost and accelerators.

Latencies are seconds at the SLO percentile; costs are currency per hour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.core.capacity import Demand, ModelParams, decode_capacity, predicted_itl, ttft_quantile
from autoscaler.core.pid import PIDState
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.slo.bursts import burst_window_s
from autoscaler.core.slo.context import StepContext
from autoscaler.core.slo.demand import DemandView, Forecasts
from autoscaler.core.slo.limits import Corrections
from autoscaler.core.slo.sizing import Sizing
from autoscaler.core.types import Observation, Reason, ReasonCode, Role

__all__ = ["Explanation", "cost_and_accelerators", "predict", "scale_reasons", "slo_reasons"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """What the reasons are built from.

    Attributes:
        obs: the (sanitised) observation.
        desired: the final replicas per role.
        pids: this step's PID states (their outputs are log trims).
        forecasts: the demand forecasts.
        view: the demand.
        sizing: the plan and what bound it.
        floors: the burst floor per role, replicas.
    """

    obs: Observation
    desired: Mapping[Role, int]
    pids: Mapping[Role, PIDState]
    forecasts: Forecasts
    view: DemandView
    sizing: Sizing
    floors: Mapping[Role, float]


def _scale_up_reasons(ctx: StepContext, ex: Explanation, ups: list[Role], plan_text: str) -> list[Reason]:
    """The primary scale-up reason (SLO trim above 5 %, else a forecast 5 % above now, else load), then the
    roles' own reasons: decode's step reserve, and burst floors."""
    obs, desired, current = ex.obs, ex.desired, ex.view.current
    lead = ctx.lead_s
    f_arr, a_up = ex.forecasts.arrival, ex.forecasts.upper[0]
    trims = max(math.exp(ex.pids[r].output) for r in ups)
    if trims > 1.05:
        code, why = ReasonCode.SLO_SCALE_UP, f"observed latency above target (trim ×{trims:.2f})"
    elif f_arr is not None and f_arr.upper > current.arrival_rate * 1.05:
        code = ReasonCode.FORECAST_SCALE_UP
        why = f"forecast {a_up:.2f} req/s in {lead:.0f}s ({f_arr.method}) vs {current.arrival_rate:.2f} now"
    else:
        code, why = ReasonCode.LOAD_SCALE_UP, f"load {current.arrival_rate:.2f} req/s needs more capacity"
    reasons = [Reason(code, f"{plan_text}: {why}")]
    if Role.DECODE in ups and ex.sizing.reserve_binds:
        reasons.append(
            Reason(
                ReasonCode.FORECAST_SCALE_UP,
                f"decode {obs.roles[Role.DECODE].replicas}→{desired[Role.DECODE]}: sized for "
                f"{current.generation_tokens_rate:,.0f} output tokens/s now "
                f"(model trim ×{math.exp(ex.pids[Role.DECODE].output):.2f}) plus a reserve of "
                f"{ex.view.decode_step:,.0f} for the largest climb within {lead:.0f}s over the last "
                f"{ex.view.windows.step_s / 60:.0f} min",
                Role.DECODE,
            )
        )
    for role in (r for r in ups if r in ex.sizing.floor_binds):
        reasons.append(
            Reason(
                ReasonCode.SLO_SCALE_UP,
                f"{role.value} {obs.roles[role].replicas}→{desired[role]}: held at the "
                f"{ex.floors[role]:.0f} replicas that {max(1, ctx.tuning.bursts.min_events)} separate "
                f"SLO-missing bursts in the last {burst_window_s(ctx) / 60:.0f} "
                "min each asked for; the load they came with did not explain them (bursts shorter "
                "than the rate window)",
                role,
            )
        )
    return reasons


def scale_reasons(ctx: StepContext, ex: Explanation) -> list[Reason]:
    """Why the fleet moves (or not), then the budget's verdict on the plan."""
    roles, obs, desired = ctx.roles, ex.obs, ex.desired
    ups = [r for r, _ in roles if desired[r] > obs.roles[r].replicas]
    downs = [r for r, _ in roles if desired[r] < obs.roles[r].replicas]
    plan_text = ", ".join(f"{r.value} {obs.roles[r].replicas}→{desired[r]}" for r, _ in roles)
    if ups:
        reasons = _scale_up_reasons(ctx, ex, ups, plan_text)
    elif downs:
        reasons = [Reason(ReasonCode.SCALE_DOWN, f"{plan_text}: the smaller fleet is predicted to hold the SLO")]
    else:
        reasons = [Reason(ReasonCode.STEADY, f"{plan_text}: no change")]
    plan = ex.sizing.plan
    if plan.budget_limited:
        reasons.append(
            Reason(
                ReasonCode.BUDGET_LIMITED,
                f"budget {ex.sizing.budget:g}/h buys {plan.served:.0%} of the capacity the SLO needs",
            )
        )
    return reasons


def slo_reasons(ctx: StepContext, predicted: tuple[float | None, float | None], earlier: list[Reason]) -> list[Reason]:
    """SLOViolated for each predicted latency above its target; SLOMet when none (here or ``earlier``)."""
    out = []
    targets = ((predicted[0], ctx.ttft_target_s, "TTFT"), (predicted[1], ctx.itl_target_s, "ITL"))
    for value, target, what in targets:
        if value is not None and value > target:
            out.append(Reason(ReasonCode.SLO_VIOLATED, f"predicted {what} {value:.3g}s above target {target:g}s"))
    if not any(r.code == ReasonCode.SLO_VIOLATED for r in (*earlier, *out)):
        out.append(Reason(ReasonCode.SLO_MET, "predicted TTFT and ITL within targets"))
    return out


def cost_and_accelerators(
    ctx: StepContext, sizing: Sizing, desired: Mapping[Role, int]
) -> tuple[float, dict[Role, dict[str, int]]]:
    """The cost of ``desired`` per hour, each role priced at the accelerator the plan gives most replicas, and
    per role the plan's replicas per accelerator type (non-zero ones, largest first)."""
    mix: dict[Role, dict[str, int]] = {}
    cost = 0.0
    names = [r for r, _ in ctx.roles]
    for (role, _rs), counts in zip(ctx.roles, sizing.plan.counts, strict=True):
        options = sizing.needs[names.index(role)].options
        pick = counts.index(max(counts)) if any(counts) else 0
        cost += desired[role] * options[pick].price_per_hour
        ranked = sorted(range(len(counts)), key=lambda k: (-counts[k], k))
        mix[role] = {options[k].accelerator: counts[k] for k in ranked if counts[k] > 0}
        if not mix[role]:
            mix[role] = {options[pick].accelerator: 0}
    return cost, mix


def predict(
    profile: PerformanceProfile,
    desired: Mapping[Role, int],
    d: Demand,
    q_ttft: float,
    q_itl: float,
    model: ModelParams,
    corrections: Corrections,
) -> tuple[float | None, float | None]:
    """Corrected TTFT and ITL percentiles the model expects at ``desired`` under ``d``, seconds (None if
    unbounded). An aggregated fleet time-shares: its prefill share is what decode leaves of it."""
    if Role.BOTH in desired:
        n = desired[Role.BOTH]
        share_decode = d.generation_tokens_rate / max(1e-9, decode_capacity(profile, 1e9, d, q_itl, model))
        prefill_n = max(1e-9, n - share_decode) if n > 0 else 0.0
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
    t = ttft * corrections.ttft if math.isfinite(ttft) else None
    i = itl * corrections.itl if math.isfinite(itl) else None
    return t, i
