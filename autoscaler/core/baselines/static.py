"""Static peak provisioning: a fixed fleet. The scorecard sweeps its size; the cheapest size that reaches an
attainment level is the "static" figure."""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.types import Decision, Observation, Reason, ReasonCode, Role

__all__ = ["StaticPolicy"]


class StaticPolicy:
    """Always ``replicas[role]`` (clamped to the role's bounds)."""

    name = "static"

    def __init__(self, replicas: Mapping[Role, int]) -> None:
        self.replicas = dict(replicas)

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> None:
        """Stateless."""
        del spec, now

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: None, now: float
    ) -> tuple[Decision, None]:
        """The fixed fleet."""
        del observation, now
        desired = {}
        for name, rs in spec.roles.items():
            role = Role(name)
            desired[role] = max(
                rs.min_replicas, min(rs.max_replicas, self.replicas.get(role, rs.min_replicas))
            )
        return Decision(desired=desired, reasons=(Reason(ReasonCode.STEADY, "static fleet"),)), state
