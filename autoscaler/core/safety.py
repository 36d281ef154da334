"""Safety rules: what the controller may do when data is bad, and when a scale-down is allowed.

* A role whose data carries any :class:`~autoscaler.core.types.DataFlag` (missing, stale, NaN, partial, …) is
  never scaled down; the source failing as a whole holds every role.
* A scale-down also needs the smaller fleet to be predicted to hold the SLO at the unpadded target;
  otherwise the smallest count that does (between the proposal and the current count) is used.
* After ``spec.fallback.afterFailures`` consecutive intervals without usable data the fallback applies:
  Hold (keep replicas), Static (``spec.fallback.replicas``) or Max (``maxReplicas``), clamped to [min, max].
"""

from __future__ import annotations

from collections.abc import Callable

from autoscaler.api.v1alpha1 import FallbackPolicy, InferenceAutoscalerSpec, RoleSpec
from autoscaler.core.types import Observation, Reason, ReasonCode, Role, RoleObservation

__all__ = ["clamp", "fallback_replicas", "guard_scale_down", "role_untrusted_reason"]


def clamp(value: int, lo: int, hi: int) -> int:
    """``value`` limited to ``[lo, hi]``."""
    return max(lo, min(hi, value))


def role_untrusted_reason(observation: Observation, role: Role, ro: RoleObservation | None) -> Reason | None:
    """Why ``role`` may not scale down, or None when its data is fresh and complete."""
    if not observation.source_ok:
        return Reason(ReasonCode.HOLD_ON_BAD_DATA, f"metrics source failed: {observation.error}", role)
    if ro is None:
        return Reason(ReasonCode.HOLD_ON_BAD_DATA, "no observation for this role", role)
    if ro.reporting is not None and ro.reporting < ro.ready:
        return Reason(
            ReasonCode.HOLD_ON_BAD_DATA, f"only {ro.reporting} of {ro.ready} ready replicas report", role
        )
    if not ro.trustworthy:
        flags = ", ".join(sorted(f.value for f in ro.flags))
        detail = "; ".join(ro.notes)
        return Reason(
            ReasonCode.HOLD_ON_BAD_DATA, f"untrusted data ({flags}){': ' + detail if detail else ''}", role
        )
    return None


def guard_scale_down(
    proposed: int, current: int, untrusted: Reason | None, holds: Callable[[int], bool], role: Role
) -> tuple[int, tuple[Reason, ...]]:
    """Allow ``proposed < current`` only on trusted data and when ``holds(n)`` (the SLO is predicted to hold
    with ``n`` replicas); otherwise raise it to the smallest count in ``[proposed, current]`` that holds."""
    if proposed >= current:
        return proposed, ()
    if untrusted is not None:
        return current, (untrusted,)
    n = proposed
    while n < current and not holds(n):
        n += 1
    if n > proposed:
        return n, (
            Reason(
                ReasonCode.STABILIZED,
                f"scale-down limited to {n}: fewer replicas are predicted to miss the SLO",
                role,
            ),
        )
    return n, ()


def fallback_replicas(spec: InferenceAutoscalerSpec, role: Role, current: int) -> int:
    """Replicas the configured fallback asks for ``role`` (clamped to its bounds)."""
    rs: RoleSpec = getattr(spec.roles, role.value)
    lo, hi = rs.min_replicas, rs.max_replicas
    policy = spec.fallback.policy
    if policy == FallbackPolicy.MAX:
        return hi
    if policy == FallbackPolicy.STATIC:
        return clamp(spec.fallback.replicas.get(role.value, current), lo, hi)
    return clamp(current, lo, hi)
