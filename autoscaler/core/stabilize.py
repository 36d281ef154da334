"""HorizontalPodAutoscaler v2 behaviour semantics, as pure functions over explicit history.

Re-stated from kubernetes/kubernetes ``pkg/controller/podautoscaler/horizontal.go``
(``stabilizeRecommendationWithBehaviors``, ``convertDesiredReplicasWithBehaviorRate``,
``calculateScaleUpLimitWithScalingRules``, ``calculateScaleDownLimitWithBehaviors``,
``getReplicasChangePerPeriod``), with the history maps the HPA keeps per object moved into the state that is
passed in and returned. The controller and every HPA-based baseline use this one implementation.

1. **Stabilise**: over the stored recommendations, the scale-up candidate is the *minimum* within the up
   window and the scale-down candidate the *maximum* within the down window; the result is
   ``current``, raised to the up candidate if above it, lowered to the down candidate if below.
2. **Rate-limit**: each policy allows ``periodStartReplicas ± value`` (Pods) or ``× (1 ± value/100)``
   (Percent, rounded up for scale-up and truncated for scale-down) where
   ``periodStartReplicas = current − added + deleted`` over the policy's period; ``selectPolicy`` Max takes
   the largest change, Min the smallest, Disabled none.
3. **Clamp** to ``[min, max]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoscaler.api.v1alpha1 import Behavior, ScalingPolicy, ScalingRules
from autoscaler.core.types import Reason, ReasonCode, Role

__all__ = [
    "DirectionRules",
    "StabilizationState",
    "behavior_rules",
    "rate_limit",
    "record_scale",
    "stabilize_recommendation",
    "within_tolerance",
]


@dataclass(frozen=True, slots=True)
class DirectionRules:
    """One direction's rules in plain numbers.

    Attributes:
        window_s: stabilisation window, seconds.
        policies: ``(type, value, period_s)`` with type ``Pods`` or ``Percent``.
        select: ``Max``, ``Min`` or ``Disabled``.
        tolerance: relative change ignored as noise (fraction).
    """

    window_s: float
    policies: tuple[tuple[str, int, float], ...]
    select: str = "Max"
    tolerance: float = 0.1


def _rules(rules: ScalingRules, window_s: float, policies: list[ScalingPolicy]) -> DirectionRules:
    pols = tuple((p.type, p.value, p.period_s) for p in policies)
    return DirectionRules(window_s, pols, rules.select_policy, rules.tolerance)


def behavior_rules(behavior: Behavior) -> tuple[DirectionRules, DirectionRules]:
    """``(scale-up rules, scale-down rules)`` from a spec's behaviour with the HPA's defaults filled in."""
    up = _rules(behavior.scale_up, behavior.up_window_s(), list(behavior.up_policies()))
    down = _rules(behavior.scale_down, behavior.down_window_s(), list(behavior.down_policies()))
    return up, down


@dataclass(frozen=True, slots=True)
class StabilizationState:
    """History the HPA keeps per target: recommendations and scale events, each ``(time_s, value)``.

    ``up_events`` and ``down_events`` hold the number of replicas added or removed at each change.
    """

    recommendations: tuple[tuple[float, int], ...] = ()
    up_events: tuple[tuple[float, int], ...] = ()
    down_events: tuple[tuple[float, int], ...] = ()


def within_tolerance(desired: float, current: int, tolerance: float) -> bool:
    """True when ``desired`` is within ``tolerance`` (relative) of ``current``."""
    if current <= 0:
        return desired <= 0
    return abs(desired / current - 1.0) <= tolerance


def stabilize_recommendation(
    state: StabilizationState,
    recommendation: int,
    current: int,
    now: float,
    up: DirectionRules,
    down: DirectionRules,
) -> tuple[int, StabilizationState]:
    """Apply the stabilisation windows; store ``recommendation`` and drop entries older than both windows."""
    up_rec = recommendation
    down_rec = recommendation
    for ts, rec in state.recommendations:
        if ts > now - up.window_s:
            up_rec = min(up_rec, rec)
        if ts > now - down.window_s:
            down_rec = max(down_rec, rec)
    result = current
    if result < up_rec:
        result = up_rec
    if result > down_rec:
        result = down_rec
    keep = max(up.window_s, down.window_s)
    recs = (*tuple((ts, r) for ts, r in state.recommendations if ts > now - keep), (now, recommendation))
    return result, StabilizationState(recs, state.up_events, state.down_events)


def _change_in_period(events: tuple[tuple[float, int], ...], period_s: float, now: float) -> int:
    return sum(n for ts, n in events if now - ts < period_s)


def _policy_limit(current: int, state: StabilizationState, rules: DirectionRules, now: float, *, up: bool) -> int:
    """HPA's ``calculateScaleUpLimitWithScalingRules`` (``up``) or ``calculateScaleDownLimitWithBehaviors``:
    the replicas the direction's policies allow from the count at the start of each policy's period."""
    if rules.select == "Disabled":
        return current
    # selectPolicy Max picks the policy that allows the largest change: the highest bound up, the lowest down
    pick = max if (rules.select != "Min") == up else min
    result: int | None = None
    for kind, value, period in rules.policies:
        start = (
            current
            - _change_in_period(state.up_events, period, now)
            + _change_in_period(state.down_events, period, now)
        )
        if up:
            proposed = start + value if kind == "Pods" else math.ceil(start * (1.0 + value / 100.0))
        else:
            proposed = start - value if kind == "Pods" else int(start * (1.0 - value / 100.0))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def rate_limit(
    state: StabilizationState,
    desired: int,
    current: int,
    lo: int,
    hi: int,
    now: float,
    up: DirectionRules,
    down: DirectionRules,
    role: Role | None = None,
) -> tuple[int, tuple[Reason, ...]]:
    """Apply the rate policies and clamp to ``[lo, hi]``; returns the result and why it was limited."""
    reasons: list[Reason] = []
    if desired > current:
        limit = max(current, _policy_limit(current, state, up, now, up=True))
        if limit > hi:
            limit = hi
        if desired > limit:
            code = ReasonCode.AT_MAX if limit == hi else ReasonCode.RATE_LIMITED
            reasons.append(Reason(code, f"scale-up to {desired} limited to {limit}", role))
            desired = limit
    elif desired < current:
        limit = min(current, _policy_limit(current, state, down, now, up=False))
        if limit < lo:
            limit = lo
        if desired < limit:
            code = ReasonCode.AT_MIN if limit == lo else ReasonCode.RATE_LIMITED
            reasons.append(Reason(code, f"scale-down to {desired} limited to {limit}", role))
            desired = limit
    if desired > hi:
        reasons.append(Reason(ReasonCode.AT_MAX, f"{desired} above maxReplicas {hi}", role))
        desired = hi
    if desired < lo:
        reasons.append(Reason(ReasonCode.AT_MIN, f"{desired} below minReplicas {lo}", role))
        desired = lo
    return desired, tuple(reasons)


def record_scale(
    state: StabilizationState, previous: int, new: int, now: float, longest_period_s: float
) -> StabilizationState:
    """Store a scale event (when replicas changed) and drop events older than the longest policy period."""
    ups = tuple(e for e in state.up_events if now - e[0] < longest_period_s)
    downs = tuple(e for e in state.down_events if now - e[0] < longest_period_s)
    if new > previous:
        ups = (*ups, (now, new - previous))
    elif new < previous:
        downs = (*downs, (now, previous - new))
    return StabilizationState(state.recommendations, ups, downs)
