"""llm-d's SLO-aware autoscaling recipe (KEDA + HPA on a latency ratio).

Source: llm-d documentation, "SLO-aware autoscaling with KEDA" (recording rule every 15 s):
``s = max(P90 TTFT / TTFT SLO, P90 TPOT / TPOT SLO)`` over the pool, 0 when idle, clamped at 2.0, averaged over
45 s; a KEDA Prometheus trigger with target value ``s*`` drives the HPA (``metricType: Value``:
``desired = ceil(s / s* × ready)`` outside the 10 % tolerance, then the HPA's default behaviours). One pool, one
SLO pair: both roles get the same ratio. The twin reports latencies at the spec's SLO percentile (95 by default)
rather than P90; that is the only deviation.

Knob: the target value ``s*`` (e.g. 0.6 … 1.0).
"""

from __future__ import annotations

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.baselines.hpa import HPAState, external_value_replicas, hpa_step
from autoscaler.core.types import Decision, Observation, Role, RoleObservation

__all__ = ["LLMDPolicy"]

CLAMP = 2.0
AVERAGE_S = 45.0


class LLMDPolicy:
    """llm-d SLO ratio → KEDA (Value target ``target``) → HPA."""

    name = "llm-d"

    def __init__(self, target: float = 1.0) -> None:
        self.target = target

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> HPAState:
        """No history."""
        del spec, now
        return HPAState()

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: HPAState, now: float
    ) -> tuple[Decision, HPAState]:
        """Record ``s`` (every call), average the last 45 s, then one HPA sync."""
        ratios: list[float] = []
        idle = True
        for role, ro in observation.roles.items():
            ro = ro.sanitized()
            if (ro.arrival_rate or 0.0) > 0 or (ro.running or 0.0) > 0 or (ro.queue_depth or 0.0) > 0:
                idle = False
            if role in (Role.PREFILL, Role.BOTH) and ro.ttft is not None:
                ratios.append(ro.ttft / spec.slo.ttft.target_s)
            if role in (Role.DECODE, Role.BOTH) and ro.itl is not None:
                ratios.append(ro.itl / spec.slo.itl.target_s)
        s = 0.0 if idle or not ratios else min(CLAMP, max(ratios))
        history = (*tuple(e for e in state.extra if now - e[0] < AVERAGE_S), (now, s))
        avg = sum(v for _, v in history) / len(history)
        state = HPAState(state.roles, state.last_sync, history, state.cached, state.cached_at)

        def recommend(role: Role, ro: RoleObservation) -> int | None:
            del role
            return external_value_replicas(ro.replicas, max(ro.ready, 1), avg, self.target)

        return hpa_step(spec, observation, state, now, recommend)
