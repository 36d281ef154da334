"""``status`` of an InferenceAutoscaler: what the controller sees and why it acts (written by the controller only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from autoscaler.api.durations import Money
from autoscaler.api.wire import WireModel as _Model

__all__ = [
    "Condition",
    "ForecastStatus",
    "InferenceAutoscalerStatus",
    "LastDecision",
    "ObservedMetrics",
    "RoleStatus",
    "StatusSummary",
]



class Condition(_Model):
    """A ``metav1.Condition``: one aspect of the resource's state."""

    type: str = Field(
        max_length=316, pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Condition type: Ready, MetricsAvailable, TargetsResolved, SLOMet, ScalingLimited, BudgetLimited.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(default=None, ge=0, description="Spec generation the condition was set from.")
    last_transition_time: str = Field(description="When the status last changed, RFC 3339.", json_schema_extra={"format": "date-time"})
    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")


class RoleStatus(_Model):
    """Replica counts of one role."""

    current: int = Field(ge=0, description="spec.replicas of the target now.")
    desired: int = Field(ge=0, description="Replicas the controller wants.")
    ready: int = Field(default=0, ge=0, description="Ready replicas.")
    starting: int = Field(default=0, ge=0, description="Replicas requested but not ready yet (they count as supply).")
    target: str = Field(default="", max_length=512, description="Resolved target as Kind/name.")
    accelerator: str | None = Field(
        default=None, max_length=63,
        description="Accelerator type the cost optimiser gives most of this role's replicas, when "
        "spec.cost.allowedAccelerators offers more than one.",
    )
    accelerator_plan: dict[str, int] | None = Field(
        default=None, max_length=8,
        description="The cost optimiser's replicas per accelerator type for this role (before stabilisation and "
        "rate limits, which act on the role's total). The controller scales the role's one target; run each type "
        "as its own pool to act on the mix.",
    )


class ObservedMetrics(_Model):
    """What the controller last saw, at the SLO percentiles. Absent values were unavailable."""

    ttft_seconds: float | None = Field(default=None, description="Observed TTFT at the SLO percentile, seconds.")
    itl_seconds: float | None = Field(default=None, description="Observed ITL at the SLO percentile, seconds.")
    queue_depth: float | None = Field(default=None, description="Requests waiting across the pool.")
    kv_cache_utilization: float | None = Field(default=None, description="Mean KV-cache utilisation, fraction 0–1.")
    arrival_rate: float | None = Field(default=None, description="Requests per second arriving.")
    time: str | None = Field(default=None, description="When the metrics were sampled, RFC 3339.")


class ForecastStatus(_Model):
    """The demand forecast the plan was sized for."""

    arrival_rate: float = Field(description="Forecast requests per second (upper quantile).")
    horizon_seconds: float = Field(description="How far ahead, seconds.")
    method: str = Field(default="", max_length=64, description="Forecaster used.")


class LastDecision(_Model):
    """The most recent decision and its main reason."""

    time: str = Field(description="When it was made, RFC 3339.")
    reason: str = Field(max_length=128, description="Main reason code, e.g. ForecastScaleUp.")
    message: str = Field(default="", max_length=4096, description="Explanation for people.")


class StatusSummary(_Model):
    """Preformatted columns for ``kubectl get ias`` (JSONPath cannot format)."""

    prefill: str = Field(default="", max_length=32, description="Prefill replicas as current→desired.")
    decode: str = Field(default="", max_length=32, description="Decode (or aggregated) replicas as current→desired.")
    ttft: str = Field(default="", max_length=32, description="Observed TTFT vs target, e.g. 620ms/1s.")
    queue: str = Field(default="", max_length=32, description="Requests waiting.")
    kv_cache: str = Field(default="", max_length=32, description="Mean KV-cache use, percent.")


class InferenceAutoscalerStatus(_Model):
    """What the controller sees and why it acts."""

    observed_generation: int | None = Field(default=None, ge=0, description="Spec generation last acted on.")
    conditions: list[Condition] = Field(default_factory=list, max_length=16, description="Current conditions.")
    roles: dict[str, RoleStatus] = Field(default_factory=dict, description="Replica counts per role.")
    observed: ObservedMetrics | None = Field(default=None, description="Last observed metrics.")
    forecast: ForecastStatus | None = Field(default=None, description="Demand forecast.")
    predicted_ttft_seconds: float | None = Field(default=None, description="TTFT expected at the desired plan, seconds.")
    predicted_itl_seconds: float | None = Field(default=None, description="ITL expected at the desired plan, seconds.")
    cost_per_hour: Money | None = Field(default=None, description="Cost of the desired plan per hour.")
    last_decision: LastDecision | None = Field(default=None, description="Most recent decision.")
    last_scale_time: str | None = Field(default=None, description="When replicas were last changed, RFC 3339.")
    summary: StatusSummary | None = Field(default=None, description="Preformatted columns for kubectl get.")
