"""Static provisioning: a fixed fleet. The scorecard sweeps its size (the cheapest size that reaches an
attainment level is the "static" figure); the twin's ``static:N`` and ``static:prefill=N,decode=M`` are the
same policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.types import Decision, Observation, Reason, ReasonCode, Role

__all__ = ["StaticPolicy"]


@dataclass(slots=True)
class StaticPolicy:
    """Fixed replicas: ``per_role[role]``, else ``all_roles``, else the role's current count.

    With an :class:`InferenceAutoscalerSpec` the roles are the spec's, each count clamped to the role's
    ``[minReplicas, maxReplicas]`` (a role not observed yet starts from its minimum); with any other spec (the
    twin's :class:`~autoscaler.sim.config.SimConfig`, whose fleet clamps on its own) the roles are the
    observed ones, unclamped.
    """

    per_role: Mapping[Role, int] = field(default_factory=dict)
    all_roles: int | None = None
    name: str = "static"

    def initial_state(self, spec: object, now: float) -> None:
        """Stateless."""
        del spec, now

    def decide(self, spec: object, observation: Observation, state: None, now: float) -> tuple[Decision, None]:
        """The fixed fleet."""
        del now
        desired: dict[Role, int] = {}
        if isinstance(spec, InferenceAutoscalerSpec):
            for name, rs in spec.roles.items():
                role = Role(name)
                obs = observation.roles.get(role)
                want = self._count(role, obs.replicas if obs is not None else rs.min_replicas)
                desired[role] = max(rs.min_replicas, min(rs.max_replicas, want))
        else:
            for role, obs in observation.roles.items():
                desired[role] = self._count(role, obs.replicas)
        return Decision(desired=desired, reasons=(Reason(ReasonCode.STEADY, "static fleet"),)), state

    def _count(self, role: Role, current: int) -> int:
        if role in self.per_role:
            return self.per_role[role]
        return self.all_roles if self.all_roles is not None else current
