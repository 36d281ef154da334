"""Value types that flow through the decision core.

Everything here is immutable plain data with no I/O: the controller builds an :class:`Observation` from
Prometheus and the API server, the digital twin builds one from its fleet model, and both hand it to a
policy's ``decide``. Units are in the field names' docstrings: seconds, requests/s, tokens/s, fractions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

__all__ = [
    "DataFlag",
    "Decision",
    "ForecastSnapshot",
    "Observation",
    "Policy",
    "Reason",
    "ReasonCode",
    "Role",
    "RoleObservation",
]


class Role(StrEnum):
    """A role in the fleet: disaggregated prefill and decode, or one aggregated role (``both``)."""

    PREFILL = "prefill"
    DECODE = "decode"
    BOTH = "both"


class DataFlag(StrEnum):
    """Why a measurement cannot be trusted. Any flag on a role forbids scaling that role down."""

    MISSING = "Missing"  # no series at all (empty result)
    STALE = "Stale"  # newest sample older than the staleness limit
    NOT_FINITE = "NotFinite"  # NaN or ±Inf where a number was expected
    DUPLICATE = "Duplicate"  # several series where one was expected
    PARTIAL = "Partial"  # some replicas report, others do not
    ERROR = "Error"  # the metrics source failed (HTTP error, timeout, malformed reply)


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True, slots=True)
class RoleObservation:
    """What is known about one role at one instant. ``None`` means "not known", never "zero".

    Attributes:
        replicas: desired replicas currently set on the target (``/scale`` ``spec.replicas``).
        ready: replicas whose pods are Ready.
        starting: replicas requested but not yet Ready (pending or cold-starting); they count as supply.
        ttft: observed time to first token at the SLO percentile, seconds.
        itl: observed inter-token latency at the SLO percentile, seconds.
        e2e: observed end-to-end latency at the SLO percentile, seconds.
        queue_depth: requests waiting across the role (sum over replicas).
        running: requests running across the role (sum over replicas).
        kv_utilization: mean KV-cache utilisation across replicas, fraction 0–1.
        kv_utilization_max: highest per-replica KV-cache utilisation, fraction 0–1.
        arrival_rate: requests arriving per second at this role over the rate window.
        prompt_tokens_rate: prompt (input) tokens per second over the rate window.
        generation_tokens_rate: generated (output) tokens per second over the rate window.
        reporting: replicas with fresh samples; less than ``ready`` means partial data.
        flags: data-quality problems; any flag forbids scale-down of this role.
        notes: human-readable detail for each flag (names the metric and what was seen).
    """

    replicas: int
    ready: int
    starting: int = 0
    ttft: float | None = None
    itl: float | None = None
    e2e: float | None = None
    queue_depth: float | None = None
    running: float | None = None
    kv_utilization: float | None = None
    kv_utilization_max: float | None = None
    arrival_rate: float | None = None
    prompt_tokens_rate: float | None = None
    generation_tokens_rate: float | None = None
    reporting: int | None = None
    flags: frozenset[DataFlag] = frozenset()
    notes: tuple[str, ...] = ()

    @property
    def trustworthy(self) -> bool:
        """True when no data-quality flag is set: the only state in which scale-down is allowed."""
        return not self.flags

    @property
    def supply(self) -> int:
        """Replicas that serve now or soon: ready plus starting."""
        return self.ready + self.starting

    def sanitized(self) -> RoleObservation:
        """Copy with non-finite numbers replaced by ``None`` and flagged ``NotFinite``."""
        numbers = {
            name: getattr(self, name)
            for name in (
                "ttft", "itl", "e2e", "queue_depth", "running", "kv_utilization", "kv_utilization_max",
                "arrival_rate", "prompt_tokens_rate", "generation_tokens_rate",
            )
        }
        bad = [name for name, v in numbers.items() if v is not None and not math.isfinite(v)]
        if not bad:
            return self
        cleaned = {name: _finite_or_none(v) for name, v in numbers.items()}
        return RoleObservation(
            replicas=self.replicas, ready=self.ready, starting=self.starting, reporting=self.reporting,
            flags=self.flags | {DataFlag.NOT_FINITE},
            notes=(*self.notes, f"non-finite values in {', '.join(bad)}"),
            **cleaned,
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """A snapshot of one pool at ``time`` (Unix seconds), one :class:`RoleObservation` per role.

    ``source_ok`` is False when the metrics source failed as a whole (then every role is untrusted).
    """

    time: float
    roles: Mapping[Role, RoleObservation]
    source_ok: bool = True
    error: str = ""

    @property
    def trustworthy(self) -> bool:
        """True when the source answered and every role's data is clean."""
        return self.source_ok and all(r.trustworthy for r in self.roles.values())


class ReasonCode(StrEnum):
    """Why a decision came out as it did. The shell maps these to conditions and Events."""

    FORECAST_SCALE_UP = "ForecastScaleUp"
    SLO_SCALE_UP = "SLOScaleUp"
    LOAD_SCALE_UP = "LoadScaleUp"
    SCALE_DOWN = "ScaleDown"
    STEADY = "Steady"
    WITHIN_TOLERANCE = "WithinTolerance"
    STABILIZED = "Stabilized"
    RATE_LIMITED = "RateLimited"
    AT_MAX = "AtMaxReplicas"
    AT_MIN = "AtMinReplicas"
    BUDGET_LIMITED = "BudgetLimited"
    METRICS_UNAVAILABLE = "MetricsUnavailable"
    HOLD_ON_BAD_DATA = "HoldOnBadData"
    FALLBACK = "Fallback"
    SLO_MET = "SLOMet"
    SLO_VIOLATED = "SLOViolated"
    INVALID_SPEC = "InvalidSpec"
    ACTION_IN_PROGRESS = "ActionInProgress"


@dataclass(frozen=True, slots=True)
class Reason:
    """One step of a decision's explanation: a stable machine code and a message for people."""

    code: ReasonCode
    message: str
    role: Role | None = None


@dataclass(frozen=True, slots=True)
class ForecastSnapshot:
    """Forecast demand over the provisioning horizon.

    Attributes:
        arrival_rate: forecast requests/s (the upper-quantile value that is provisioned for).
        arrival_rate_mean: forecast requests/s (point forecast).
        prompt_tokens_rate: forecast prompt tokens/s (upper quantile).
        generation_tokens_rate: forecast output tokens/s (upper quantile).
        horizon_s: how far ahead, seconds.
        method: which forecaster produced it.
    """

    arrival_rate: float
    arrival_rate_mean: float
    prompt_tokens_rate: float
    generation_tokens_rate: float
    horizon_s: float
    method: str


@dataclass(frozen=True, slots=True)
class Decision:
    """What a policy wants, and why.

    Attributes:
        desired: replicas per role after stabilisation and clamping.
        reasons: ordered explanation, most important first.
        predicted_ttft: TTFT at the SLO percentile the capacity model expects at ``desired``, seconds.
        predicted_itl: ITL at the SLO percentile the capacity model expects at ``desired``, seconds.
        forecast: demand forecast the plan was sized for, if any.
        cost_per_hour: cost of ``desired`` in the spec's currency per hour.
        accelerators: where the optimiser chose among several accelerator types, per role the replicas per type
            in its plan (before stabilisation and rate limits, which act on the role's total), largest first.
    """

    desired: Mapping[Role, int]
    reasons: tuple[Reason, ...] = ()
    predicted_ttft: float | None = None
    predicted_itl: float | None = None
    forecast: ForecastSnapshot | None = None
    cost_per_hour: float | None = None
    accelerators: Mapping[Role, Mapping[str, int]] = field(default_factory=dict)

    @property
    def primary_reason(self) -> Reason | None:
        """The first reason, used as the status ``lastDecision`` reason."""
        return self.reasons[0] if self.reasons else None


SpecT_contra = TypeVar("SpecT_contra", contravariant=True)
StateT = TypeVar("StateT")


class Policy(Protocol[SpecT_contra, StateT]):
    """A scaling policy: a pure update function, as in python-control's ``(t, x, u, params)``.

    ``decide`` must not read clocks, do I/O or keep hidden state; everything it needs comes in and
    everything it learns goes out in the returned state. The controller and the digital twin call the same
    object, which is what makes the twin's figures evidence about the controller.
    """

    name: str

    def initial_state(self, spec: SpecT_contra, now: float) -> StateT:
        """State before the first observation (``now`` in Unix seconds)."""
        ...

    def decide(
        self, spec: SpecT_contra, observation: Observation, state: StateT, now: float
    ) -> tuple[Decision, StateT]:
        """One control step at ``now`` (Unix seconds)."""
        ...
