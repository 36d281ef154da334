"""The policy wrappers that ``inference-autoscaler run`` installs (the command itself, which builds the adapters,
is the composition root :mod:`autoscaler.app`).

- :class:`ProfilePolicy` — the control core's ``SLOPolicy``, one per performance profile named in the specs;
- :class:`RecordingPolicy` — ``--record-decisions``: every observation and decision as a JSON line;
- :class:`~autoscaler.controller.timescale.TimeScaledPolicy` — ``--time-scale`` (testing only).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import structlog

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.controller.profile_policy import ProfilePolicy
from autoscaler.controller.timescale import TimeScaledPolicy
from autoscaler.core.types import Decision, Observation, Policy

__all__ = ["ProfilePolicy", "RecordingPolicy", "TimeScaledPolicy", "observation_dict"]

log = structlog.get_logger("autoscaler.controller")


class RecordingPolicy:
    """Writes what a policy is given and what it decides, one JSON line per ``decide`` call (debugging).

    Each record holds ``now`` (Unix seconds, the controller's clock), the pool, the observation exactly as the
    controller hands it over (wrapped outside :class:`TimeScaledPolicy`, so times are wall-clock), and the
    decision's replicas and reasons. Lines are flushed at once so that a killed process leaves a readable file.
    """

    def __init__(self, inner: Policy[InferenceAutoscalerSpec, Any], path: str) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> Any:
        """The wrapped policy's initial state."""
        return self.inner.initial_state(spec, now)

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: Any, now: float
    ) -> tuple[Decision, Any]:
        """The wrapped policy's decision; records inputs and outputs."""
        decision, new_state = self.inner.decide(spec, observation, state, now)
        record = {
            "now": now,
            "pool": spec.pool_ref.name,
            "observation": observation_dict(observation),
            "desired": {r.value: n for r, n in decision.desired.items()},
            "reasons": [f"{r.code.value}: {r.message}" for r in decision.reasons],
        }
        if not self._file.closed:
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()
        return decision, new_state


def observation_dict(observation: Observation) -> dict[str, Any]:
    """An :class:`Observation` as plain JSON-able data (flags and roles as strings)."""
    roles: dict[str, Any] = {}
    for role, ro in observation.roles.items():
        d = dataclasses.asdict(ro)
        d["flags"] = sorted(f.value for f in ro.flags)
        d["notes"] = list(ro.notes)
        roles[role.value] = d
    return {"time": observation.time, "source_ok": observation.source_ok, "error": observation.error,
            "roles": roles}


