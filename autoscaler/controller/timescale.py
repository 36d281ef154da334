"""Accelerated time for the cluster in a box (``run --time-scale``, testing only): a policy wrapper.

The product offers the flag (docs/controller.md) because the end-to-end harness runs the real
``inference-autoscaler run`` against a digital twin that plays ``scale`` simulated seconds per wall second; in
production the scale is 1 and the wrapper is not installed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from autoscaler.api.durations import format_duration, parse_duration
from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec, parse_spec
from autoscaler.core.types import Decision, Observation, Policy

__all__ = ["TimeScaledPolicy"]

# Spec durations that describe the control loop's own dynamics (scaled by TimeScaledPolicy). Latency targets are
# request physics and the Prometheus timeout is real I/O: neither is scaled.
_LOOP_DURATIONS: tuple[tuple[str, ...], ...] = (
    ("controlInterval",),
    ("manualPause",),
    ("metrics", "window"),
    ("metrics", "staleness"),
    ("performance", "coldStart"),
    ("forecast", "horizon"),
    ("forecast", "season"),
    ("behavior", "scaleUp", "stabilizationWindow"),
    ("behavior", "scaleDown", "stabilizationWindow"),
)


class TimeScaledPolicy:
    """Runs a policy in accelerated time: the policy sees ``scale``× faster time than the wall clock.

    For the cluster in a box only (``--time-scale``), where the model servers are a digital twin running
    ``scale`` simulated seconds per wall second and the InferenceAutoscaler's loop durations are written in wall
    seconds (divided by ``scale``). This wrapper hands the wrapped policy the spec with those durations
    multiplied back and ``now`` (and the observation's time) on the simulated clock
    ``origin + (wall − origin) × scale``, so the policy's internal time constants (PID integral and derivative,
    EWMA time constants, forecast buckets) run at the same pace relative to the load as in production.
    With ``scale`` 1 it is the identity.
    """

    def __init__(self, inner: Policy[InferenceAutoscalerSpec, Any], scale: float, origin: float) -> None:
        self.inner = inner
        self.scale = scale
        self.origin = origin
        self.name = getattr(inner, "name", type(inner).__name__)
        self._specs: dict[str, InferenceAutoscalerSpec] = {}

    def _time(self, t: float) -> float:
        return self.origin + (t - self.origin) * self.scale

    def _spec(self, spec: InferenceAutoscalerSpec) -> InferenceAutoscalerSpec:
        raw = spec.model_dump(by_alias=True, mode="json", exclude_none=True)
        key = repr(raw)
        if key not in self._specs:
            for path in _LOOP_DURATIONS:
                node: Any = raw
                for part in path[:-1]:
                    node = node.get(part) if isinstance(node, dict) else None
                if isinstance(node, dict) and isinstance(node.get(path[-1]), str):
                    node[path[-1]] = format_duration(parse_duration(node[path[-1]]) * self.scale)
            for rules in (raw.get("behavior") or {}).values():
                for pol in rules.get("policies") or []:
                    pol["period"] = format_duration(parse_duration(pol["period"]) * self.scale)
            self._specs[key] = parse_spec(raw, source="time-scaled spec")
        return self._specs[key]

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> Any:
        """The wrapped policy's initial state, on the scaled clock."""
        return self.inner.initial_state(self._spec(spec), self._time(now))

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: Any, now: float
    ) -> tuple[Decision, Any]:
        """The wrapped policy's decision, with spec durations and times on the scaled clock."""
        obs = dataclasses.replace(observation, time=self._time(observation.time))
        return self.inner.decide(self._spec(spec), obs, state, self._time(now))
