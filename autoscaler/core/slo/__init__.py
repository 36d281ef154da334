"""The controller's SLO policy, one idea per module.

- :mod:`.state` — what is remembered between steps (:class:`SLOState`, demand samples, bursts).
- :mod:`.tuning` — knobs outside the custom resource, in frozen groups (:class:`Tuning`).
- :mod:`.context` — the step's fixed inputs read once from the spec (:class:`StepContext`).
- :mod:`.demand` — signals, forecasts, the provisioned demand and its reserves.
- :mod:`.conditions` — busy, decode congested, draining, steady; each computed once per step.
- :mod:`.learning` — model correction: learned latency ratios and the PID trims.
- :mod:`.bursts` — the burst floor.
- :mod:`.sizing` — per-replica capacity, role needs and the cost optimiser's plan.
- :mod:`.limits` — scale-down guard, tolerance, stabilisation, rate limits and budget.
- :mod:`.explain` — reasons and predictions.
- :mod:`.policy` — :func:`decide`, composing the stages, and :class:`SLOPolicy`.
"""

from autoscaler.core.slo.context import forecast_config, spec_roles
from autoscaler.core.slo.policy import SLOPolicy, decide, initial_state
from autoscaler.core.slo.state import Burst, DemandSample, RoleState, SLOState, StepMemory
from autoscaler.core.slo.tuning import BurstTuning, ForecastTuning, LearningTuning, ReserveTuning, Tuning

__all__ = [
    "Burst",
    "BurstTuning",
    "DemandSample",
    "ForecastTuning",
    "LearningTuning",
    "ReserveTuning",
    "RoleState",
    "SLOPolicy",
    "SLOState",
    "StepMemory",
    "Tuning",
    "decide",
    "forecast_config",
    "initial_state",
    "spec_roles",
]
