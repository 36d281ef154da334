"""An AIBrix-style KPA (Knative Pod Autoscaler): stable and panic windows on a per-pod metric.

Sources: vllm-project/aibrix ``pkg/controller/podautoscaler/algorithm/kpa.go`` and Knative Serving's
``pkg/autoscaler/scaling/autoscaler.go``. Every resync (10 s; here every control step at least 10 s apart):

* the metric total (per-pod concurrency: running + waiting requests) is averaged over a stable window (180 s)
  and a panic window (60 s); ``desired_stable = ceil(stable / target)``, ``desired_panic = ceil(panic / target)``,
  each bounded to ``[floor(N / 2), ceil(2 N)]`` (N = ready pods, max scale-up/down rate 2);
* panic starts when ``panic / N ≥ 2.0 × target`` and ends after a stable window without that; in panic the
  desired count never decreases;
* changes within ±10 % of the current count are ignored;
* scale-down is delayed 300 s: the desired count is the maximum recommended over the last 300 s.

Knob: the per-pod target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.types import Decision, Observation, Reason, ReasonCode, Role

__all__ = ["KPAPolicy", "KPARoleState", "KPAState"]

STABLE_S = 180.0
PANIC_S = 60.0
PANIC_THRESHOLD = 2.0
MAX_RATE = 2.0
BAND = 0.1
SCALE_DOWN_DELAY_S = 300.0
RESYNC_S = 10.0


@dataclass(frozen=True, slots=True)
class KPARoleState:
    """Samples ``(t, total)``, panic start time, max pods while panicking, recent recommendations."""

    samples: tuple[tuple[float, float], ...] = ()
    panic_since: float | None = None
    panic_max: int = 0
    recommendations: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True, slots=True)
class KPAState:
    """Per-role KPA state and the last evaluation time."""

    roles: Mapping[Role, KPARoleState] = field(default_factory=dict)
    last_eval: float | None = None


class KPAPolicy:
    """AIBrix-style KPA per role with per-pod concurrency target ``target``."""

    name = "kpa"

    def __init__(self, target: float = 16.0) -> None:
        self.target = target

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> KPAState:
        """No history."""
        del spec, now
        return KPAState()

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: KPAState, now: float
    ) -> tuple[Decision, KPAState]:
        """Record the metric, and every ≥ 10 s compute the KPA recommendation per role."""
        roles = [(Role(n), rs) for n, rs in spec.roles.items()]
        current = {
            r: observation.roles[r].replicas if r in observation.roles else rs.min_replicas for r, rs in roles
        }
        new_roles = dict(state.roles)
        evaluate = state.last_eval is None or now - state.last_eval >= RESYNC_S - 1e-9
        desired = dict(current)
        reasons: list[Reason] = []
        for role, rs in roles:
            rst = new_roles.get(role, KPARoleState())
            ro = observation.roles.get(role)
            ro = ro.sanitized() if ro is not None else None
            samples = tuple(s for s in rst.samples if now - s[0] < STABLE_S)
            if (
                observation.source_ok
                and ro is not None
                and (ro.running is not None or ro.queue_depth is not None)
            ):
                samples = (*samples, (now, (ro.running or 0.0) + (ro.queue_depth or 0.0)))
            rst = KPARoleState(samples, rst.panic_since, rst.panic_max, rst.recommendations)
            if not evaluate or ro is None or not samples:
                new_roles[role] = rst
                continue
            ready = max(1, ro.ready)
            stable = sum(v for _, v in samples) / len(samples)
            recent = [v for t, v in samples if now - t < PANIC_S]
            panic = sum(recent) / len(recent) if recent else stable
            lo, hi = math.floor(ready / MAX_RATE), math.ceil(ready * MAX_RATE)
            d_stable = min(hi, max(lo, math.ceil(stable / self.target)))
            d_panic = min(hi, max(lo, math.ceil(panic / self.target)))
            over = panic / ready >= PANIC_THRESHOLD * self.target
            panic_since = rst.panic_since
            if over:
                panic_since = now
            elif panic_since is not None and now - panic_since >= STABLE_S:
                panic_since = None
            if panic_since is not None:
                want = max(d_panic, rst.panic_max, current[role])
                panic_max = want
            else:
                want, panic_max = d_stable, 0
            if current[role] > 0 and abs(want / current[role] - 1.0) <= BAND:
                want = current[role]
            recs = (*tuple(x for x in rst.recommendations if now - x[0] < SCALE_DOWN_DELAY_S), (now, want))
            want = max(x[1] for x in recs)
            desired[role] = max(rs.min_replicas, min(rs.max_replicas, want))
            if panic_since is not None:
                reasons.append(Reason(ReasonCode.SLO_SCALE_UP, "panic mode", role))
            new_roles[role] = KPARoleState(samples, panic_since, panic_max, recs)
        code = (
            ReasonCode.LOAD_SCALE_UP
            if any(desired[r] > current[r] for r, _ in roles)
            else (
                ReasonCode.SCALE_DOWN if any(desired[r] < current[r] for r, _ in roles) else ReasonCode.STEADY
            )
        )
        reasons.insert(0, Reason(code, ", ".join(f"{r.value} {current[r]}→{desired[r]}" for r, _ in roles)))
        return Decision(desired=desired, reasons=tuple(reasons)), KPAState(
            new_roles, now if evaluate else state.last_eval
        )
