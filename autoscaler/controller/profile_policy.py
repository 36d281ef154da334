"""The policy ``inference-autoscaler run`` ships: the control core's ``SLOPolicy`` with the catalog's profiles."""

from __future__ import annotations

from typing import Any

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.catalog import load_profile
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.slo import SLOPolicy
from autoscaler.core.types import Decision, Observation

__all__ = ["ProfilePolicy"]


class ProfilePolicy:
    """The control core's ``SLOPolicy``, one instance per set of performance profiles named in the specs.

    ``SLOPolicy`` is built around one measured profile; InferenceAutoscalers name theirs in
    ``spec.performance.profile``, and each of ``spec.cost.allowedAccelerators`` may name its own ``profile``. This
    wrapper loads every named profile once (from the bundled catalog) and delegates to one ``SLOPolicy`` per
    combination. Still a pure policy: the state is the wrapped policy's state.
    """

    name = "slo"

    def __init__(self) -> None:
        self._policies: dict[tuple[str, ...], SLOPolicy] = {}
        self._profiles: dict[str, PerformanceProfile] = {}

    def _profile(self, name: str) -> PerformanceProfile:
        if name not in self._profiles:
            self._profiles[name] = load_profile(name)
        return self._profiles[name]

    def _policy(self, spec: InferenceAutoscalerSpec) -> SLOPolicy:
        extra = tuple(sorted({opt.profile for opt in spec.cost.allowed_accelerators if opt.profile}))
        key = (spec.performance.profile, *extra)
        if key not in self._policies:
            # Keyed by profile name: sizing.accelerator_options looks an option's profile up by that name.
            self._policies[key] = SLOPolicy(self._profile(key[0]), {name: self._profile(name) for name in extra})
        return self._policies[key]

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> Any:
        """The wrapped policy's initial state."""
        return self._policy(spec).initial_state(spec, now)

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: Any, now: float
    ) -> tuple[Decision, Any]:
        """The wrapped policy's decision."""
        result: tuple[Decision, Any] = self._policy(spec).decide(spec, observation, state, now)
        return result
