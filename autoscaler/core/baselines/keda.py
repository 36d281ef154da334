"""KEDA's vLLM recipe: a Prometheus trigger on ``sum(vllm:num_requests_waiting)`` feeding an HPA.

Sources: kedacore/keda ``pkg/scalers/prometheus_scaler.go`` (query → one value; an empty result is 0 unless
``ignoreNullValues: false``; polling interval 30 s) and the vLLM production-stack / KServe KEDA examples
(``metricType: AverageValue``, threshold ≈ 5 waiting requests per replica). The generated HPA then runs with
Kubernetes' defaults (``GetExternalPerPodMetricReplicas``: ``ceil(sum / threshold)`` outside the 10 %
tolerance; behaviours as in :mod:`autoscaler.core.baselines.hpa`). Each role gets its own ScaledObject.

Knob: the threshold.
"""

from __future__ import annotations

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.baselines.hpa import HPAState, external_per_pod_replicas, hpa_step
from autoscaler.core.types import Decision, Observation, Role, RoleObservation

__all__ = ["KEDAPolicy"]

POLLING_S = 30.0


class KEDAPolicy:
    """KEDA ScaledObject (Prometheus trigger, AverageValue ``threshold``) → HPA, per role."""

    name = "keda"

    def __init__(self, threshold: float = 5.0) -> None:
        self.threshold = threshold

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> HPAState:
        """No history."""
        del spec, now
        return HPAState()

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: HPAState, now: float
    ) -> tuple[Decision, HPAState]:
        """Poll Prometheus every 30 s (the HPA reads the cached value in between), then one HPA sync."""
        polled: dict[Role, float] = {}
        cache = dict(state.extra)  # role index → value
        fresh = state.cached_at is None or now - state.cached_at >= POLLING_S - 1e-9
        roles = [Role(name) for name, _ in spec.roles.items()]
        for i, role in enumerate(roles):
            ro = observation.roles.get(role)
            if fresh:
                # an empty query result becomes 0 (KEDA's default); a failed query is an error → no scaling
                value = (
                    None
                    if not observation.source_ok
                    else ((ro.sanitized().queue_depth or 0.0) if ro is not None else 0.0)
                )
                polled[role] = -1.0 if value is None else value
            else:
                polled[role] = cache.get(float(i), -1.0)
        extra = tuple((float(i), polled[r]) for i, r in enumerate(roles))
        state = HPAState(state.roles, state.last_sync, extra, state.cached, now if fresh else state.cached_at)

        def recommend(role: Role, ro: RoleObservation) -> int | None:
            value = polled[role]
            if value < 0:
                return None
            return external_per_pod_replicas(ro.replicas, value, self.threshold)

        return hpa_step(spec, observation, state, now, recommend)
