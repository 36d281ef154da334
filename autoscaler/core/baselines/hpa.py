"""Kubernetes HorizontalPodAutoscaler v2 on a per-pod metric, and the external-metric variants KEDA uses.

Source: kubernetes/kubernetes ``pkg/controller/podautoscaler/replica_calculator.go``
(``calcPlainMetricReplicas``, ``GetExternalMetricReplicas``, ``GetExternalPerPodMetricReplicas``) and
``horizontal.go`` (sync loop, behaviours; shared with the controller through :mod:`autoscaler.core.stabilize`).

* Every 15 s (``--horizontal-pod-autoscaler-sync-period``): usage ratio ``r = mean per-pod metric / target``.
* Pods without metrics (here: replicas still starting, and ready replicas that do not report) are left out
  first; if any, they are re-added at 100 % of target when ``r < 1`` (scale-down) and at 0 when ``r > 1``
  (scale-up); if that flips the direction or lands within tolerance, no change. Pending pods are ignored.
* ``|1 − r| ≤ 0.1`` → no change; else ``desired = ceil(r × pods with metrics)``.
* Then stabilisation windows (up 0 s, down 300 s) and rate policies (up: max(100 %, 4 pods)/15 s; down:
  100 %/15 s), clamp to [min, max] — the HPA's defaults.
* When the metric cannot be read the HPA does not scale (and stores no recommendation).
* On its first sync the HPA records the current replica count as a recommendation
  (``recordInitialRecommendation``), so the scale-down window starts from the fleet it found: a new HPA does not
  cut a running fleet before the window has passed.

Knob: the per-pod target. Metrics: ``queue`` (``vllm:num_requests_waiting``) or ``kv``
(``vllm:kv_cache_usage_perc``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from autoscaler.api.v1alpha1 import Behavior, InferenceAutoscalerSpec
from autoscaler.core.stabilize import (
    DirectionRules,
    StabilizationState,
    behavior_rules,
    rate_limit,
    record_scale,
    stabilize_recommendation,
)
from autoscaler.core.types import Decision, Observation, Reason, ReasonCode, Role, RoleObservation

__all__ = [
    "HPAPolicy",
    "HPAState",
    "external_per_pod_replicas",
    "external_value_replicas",
    "hpa_roles",
    "normalize",
    "pods_metric_replicas",
]

TOLERANCE = 0.1
SYNC_PERIOD_S = 15.0


class RoleBounds(Protocol):
    """A role's replica bounds: :class:`RoleSpec`, or the twin's ``RoleShape`` (a spec-free twin run)."""

    @property
    def min_replicas(self) -> int: ...
    @property
    def max_replicas(self) -> int: ...


def hpa_roles(spec: object) -> list[tuple[Role, RoleBounds]]:
    """Configured roles, prefill before decode: the spec's, or, for any other object (the twin's
    ``SimConfig``), its ``roles`` mapping of role to bounds."""
    if isinstance(spec, InferenceAutoscalerSpec):
        return [(Role(name), rs) for name, rs in spec.roles.items()]
    roles: Mapping[str, RoleBounds] = getattr(spec, "roles", {})
    return [(Role(name), rs) for name, rs in roles.items()]


def pods_metric_replicas(
    current: int, with_metrics: int, missing: int, total: float, target: float, tolerance: float = TOLERANCE
) -> int:
    """``calcPlainMetricReplicas`` for a pods metric whose per-pod values sum to ``total`` over
    ``with_metrics`` pods, with ``missing`` pods lacking metrics."""
    if with_metrics <= 0 or target <= 0:
        return current
    ratio = total / with_metrics / target
    if missing == 0:
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(ratio * with_metrics)
    fill = target if ratio < 1.0 else 0.0
    new_ratio = (total + missing * fill) / (with_metrics + missing) / target
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    new = math.ceil(new_ratio * (with_metrics + missing))
    if (new_ratio < 1.0 and new > current) or (new_ratio > 1.0 and new < current):
        return current
    return new


def external_per_pod_replicas(
    current: int, total: float, target_per_pod: float, tolerance: float = TOLERANCE
) -> int:
    """``GetExternalPerPodMetricReplicas`` (target type ``AverageValue``)."""
    if target_per_pod <= 0:
        return current
    ratio = total / (target_per_pod * current) if current > 0 else math.inf
    if current > 0 and abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(total / target_per_pod)


def external_value_replicas(
    current: int, ready: int, value: float, target: float, tolerance: float = TOLERANCE
) -> int:
    """``GetExternalMetricReplicas`` (target type ``Value``): ``ceil(value / target × ready)``."""
    if target <= 0:
        return current
    ratio = value / target
    if abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(ratio * ready)


@dataclass(frozen=True, slots=True)
class HPAState:
    """Per-role HPA memory plus the time of the last sync and any per-policy extra memory."""

    roles: Mapping[Role, StabilizationState] = field(default_factory=dict)
    last_sync: float | None = None
    extra: tuple[tuple[float, float], ...] = ()
    cached: float | None = None
    cached_at: float | None = None
    readings: tuple[tuple[float, Observation], ...] = ()  # (time, observation) within HPAPolicy.metric_delay_s


def normalize(
    stab: StabilizationState,
    recommendation: int,
    current: int,
    lo: int,
    hi: int,
    now: float,
    up: DirectionRules,
    down: DirectionRules,
    role: Role,
) -> tuple[int, StabilizationState, tuple[Reason, ...]]:
    """``normalizeDesiredReplicasWithBehaviors`` then record the scale event."""
    stabilized, stab = stabilize_recommendation(stab, recommendation, current, now, up, down)
    final, reasons = rate_limit(stab, stabilized, current, lo, hi, now, up, down, role)
    longest = max([p[2] for p in up.policies + down.policies] or [15.0])
    return final, record_scale(stab, current, final, now, longest), reasons


def hpa_step(
    spec: object,
    obs: Observation,
    state: HPAState,
    now: float,
    recommend: Callable[[Role, RoleObservation], int | None],
    behavior: Behavior | None = None,
    sync_period_s: float = SYNC_PERIOD_S,
) -> tuple[Decision, HPAState]:
    """One HPA sync every ``sync_period_s`` seconds: ``recommend`` gives the metric-based replicas per role
    (None = metric unavailable)."""
    roles = hpa_roles(spec)
    current = {role: obs.roles[role].replicas if role in obs.roles else rs.min_replicas for role, rs in roles}
    if state.last_sync is not None and now - state.last_sync < sync_period_s - 1e-9:
        return Decision(desired=current, reasons=(Reason(ReasonCode.STEADY, "between HPA syncs"),)), state
    up, down = behavior_rules(behavior or Behavior())
    desired: dict[Role, int] = {}
    # recordInitialRecommendation: the first sync of a role remembers the fleet it found.
    stabs = {role: state.roles.get(role, StabilizationState(recommendations=((now, current[role]),)))
             for role, _ in roles}
    reasons: list[Reason] = []
    for role, rs in roles:
        ro = obs.roles.get(role)
        rec = recommend(role, ro.sanitized()) if (ro is not None and obs.source_ok) else None
        if rec is None:
            desired[role] = current[role]
            reasons.append(Reason(ReasonCode.METRICS_UNAVAILABLE, "metric unavailable: no scaling", role))
            continue
        final, stab, why = normalize(
            stabs[role],
            rec,
            current[role],
            rs.min_replicas,
            rs.max_replicas,
            now,
            up,
            down,
            role,
        )
        stabs[role] = stab
        desired[role] = final
        reasons.extend(why)
    code = (
        ReasonCode.LOAD_SCALE_UP
        if any(desired[r] > current[r] for r, _ in roles)
        else (ReasonCode.SCALE_DOWN if any(desired[r] < current[r] for r, _ in roles) else ReasonCode.STEADY)
    )
    reasons.insert(0, Reason(code, ", ".join(f"{r.value} {current[r]}→{desired[r]}" for r, _ in roles)))
    return Decision(desired=desired, reasons=tuple(reasons)), HPAState(
        stabs, now, state.extra, state.cached, state.cached_at
    )


class HPAPolicy:
    """Kubernetes HPA v2 on a per-pod metric (``queue`` or ``kv``) with target ``target`` per pod.

    Each role is its own HPA on its own pods (as two HPAs on two Deployments would be).

    ``metric_delay_s``: how old the metric is when the HPA reads it, seconds (0: the latest scrape, as through
    prometheus-adapter). Through our external metrics API the value is the controller's last observation, one
    control interval later (``e2e/test_hpa_fidelity.py`` measures the difference on the real HPA).
    """

    def __init__(self, metric: str = "queue", target: float = 5.0, *, behavior: Behavior | None = None,
                 sync_period_s: float = SYNC_PERIOD_S, metric_delay_s: float = 0.0) -> None:
        if metric not in ("queue", "kv"):
            raise ValueError(f"metric must be 'queue' or 'kv', got {metric!r}")
        self.metric = metric
        self.target = target
        self.behavior = behavior
        self.sync_period_s = sync_period_s
        self.metric_delay_s = metric_delay_s
        self.name = f"hpa-{metric}"

    def initial_state(self, spec: object, now: float) -> HPAState:
        """No history."""
        del spec, now
        return HPAState()

    def _recommend(self, role: Role, ro: RoleObservation) -> int | None:
        del role
        reporting = ro.reporting if ro.reporting is not None else ro.ready
        value = (
            ro.queue_depth
            if self.metric == "queue"
            else (ro.kv_utilization * reporting if ro.kv_utilization is not None else None)
        )
        if value is None or reporting <= 0:
            return None
        missing = ro.starting + max(0, ro.ready - reporting)
        return pods_metric_replicas(ro.replicas, reporting, missing, value, self.target)

    def decide(
        self, spec: object, observation: Observation, state: HPAState, now: float
    ) -> tuple[Decision, HPAState]:
        """One HPA sync (every ``sync_period_s``, 15 s by default; calls in between keep the replicas). ``spec``
        gives the roles and their bounds (:func:`hpa_roles`)."""
        if self.metric_delay_s <= 0:
            return hpa_step(spec, observation, state, now, self._recommend, self.behavior, self.sync_period_s)
        readings = (*state.readings, (now, observation))
        ripe = [k for k, (t, _) in enumerate(readings) if t <= now - self.metric_delay_s + 1e-9]
        # No reading old enough yet: the metric is not there yet, so the HPA does not scale.
        seen = _with_metrics_of(observation, readings[ripe[-1]][1]) if ripe else replace(observation, source_ok=False)
        decision, new_state = hpa_step(spec, seen, state, now, self._recommend, self.behavior, self.sync_period_s)
        # Older than the newest ripe reading is never read again.
        return decision, replace(new_state, readings=readings[ripe[-1]:] if ripe else readings)


def _with_metrics_of(now: Observation, then: Observation) -> Observation:
    """Today's replica counts with the metric values of an older observation (what a delayed metric shows)."""
    roles = {role: replace(ro, queue_depth=then.roles[role].queue_depth,
                           kv_utilization=then.roles[role].kv_utilization, flags=then.roles[role].flags)
             if role in then.roles else ro for role, ro in now.roles.items()}
    return replace(now, roles=roles, source_ok=then.source_ok)
