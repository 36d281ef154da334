"""The ``InferenceAutoscaler`` custom resource, ``autoscaler.inference.dev/v1alpha1``.

These models are the source of truth: the CRD in ``crds/`` is generated from them (``inference-autoscaler
crd``), ``docs/api.md`` is generated from them, and the controller parses every object it reads with them.
Field names on the wire are camelCase; every field carries its unit and default in its description so that
``kubectl explain inferenceautoscaler.spec`` is useful.

Cross-field rules live twice on purpose: as CEL ``x-kubernetes-validations`` (so the API server rejects bad
objects at admission) and as pydantic validators (so the controller refuses them with the same message on
clusters where the CRD was installed without the rules, and so the tests can check both).
"""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from autoscaler.api.behavior import Behavior, ScalingPolicy, ScalingRules
from autoscaler.api.durations import Duration, Money, parse_duration
from autoscaler.api.status import (
    Condition,
    ForecastStatus,
    InferenceAutoscalerStatus,
    LastDecision,
    ObservedMetrics,
    RoleStatus,
    StatusSummary,
)
from autoscaler.api.wire import WireModel as _Model
from autoscaler.errors import InvalidSpecError

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAME",
    "VERSION",
    "AcceleratorOption",
    "Actuation",
    "Behavior",
    "Condition",
    "CostSpec",
    "CrossVersionObjectReference",
    "Engine",
    "FallbackPolicy",
    "FallbackSpec",
    "ForecastMethod",
    "ForecastSpec",
    "ForecastStatus",
    "InferenceAutoscaler",
    "InferenceAutoscalerSpec",
    "InferenceAutoscalerStatus",
    "LastDecision",
    "LatencyObjective",
    "ManualChangePolicy",
    "MetricsSpec",
    "ObjectMeta",
    "ObservedMetrics",
    "PoolRef",
    "PrometheusSource",
    "RoleSpec",
    "RoleStatus",
    "Roles",
    "SLOSpec",
    "ScalingPolicy",
    "ScalingRules",
    "StatusSummary",
    "parse_spec",
    "parse_spec_from_cluster",
]

GROUP = "autoscaler.inference.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceAutoscaler"
PLURAL = "inferenceautoscalers"
SHORT_NAME = "ias"

_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DnsName = Annotated[str, Field(min_length=1, max_length=253, pattern=_NAME_PATTERN)]


def _amount(money: str | None) -> float:
    """A decimal money string as a number (0 when empty)."""
    return float(money) if money else 0.0


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, JsonValue]:
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


# ---------------------------------------------------------------------------------------------- references


class PoolRef(_Model):
    """The InferencePool this autoscaler serves. It must be in the autoscaler's own namespace."""

    name: DnsName = Field(description="Name of the InferencePool in the same namespace.")
    group: Literal["inference.networking.k8s.io", "inference.networking.x-k8s.io"] = Field(
        default="inference.networking.k8s.io",
        description=(
            "API group of the pool: inference.networking.k8s.io (v1) or inference.networking.x-k8s.io "
            "(v1alpha2). Default inference.networking.k8s.io."
        ),
    )


class CrossVersionObjectReference(_Model):
    """A workload with a ``/scale`` subresource in the autoscaler's namespace (as in autoscaling/v2)."""

    api_version: str = Field(
        min_length=1, max_length=253, description="API version of the target, e.g. apps/v1 or leaderworkerset.x-k8s.io/v1."
    )
    kind: str = Field(
        min_length=1, max_length=63, pattern=r"^[A-Z][A-Za-z0-9]*$",
        description="Kind of the target: Deployment, StatefulSet, LeaderWorkerSet or any kind with a scale subresource.",
    )
    name: DnsName = Field(description="Name of the target in the autoscaler's namespace.")


# -------------------------------------------------------------------------------------------------- roles


class RoleSpec(_Model):
    """Bounds and target of one role (prefill, decode, or an aggregated role serving both)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("self.minReplicas <= self.maxReplicas", "minReplicas must be less than or equal to maxReplicas"),
            ]
        }
    )

    scale_target_ref: CrossVersionObjectReference | None = Field(
        default=None,
        description=(
            "Workload to scale for this role. When omitted, the controller discovers it from the pool's "
            "selector plus the role label (spec.roleLabel) across Deployments, StatefulSets and LeaderWorkerSets; "
            "exactly one match is required."
        ),
    )
    min_replicas: int = Field(
        default=1, ge=0, le=10000,
        description="Lower bound on replicas. 0 allows scaling to zero (cold starts then add latency). Default 1.",
    )
    max_replicas: int = Field(ge=1, le=10000, description="Upper bound on replicas. Required; must be ≥ minReplicas.")
    gpus_per_replica: int = Field(
        default=1, ge=1, le=64,
        description="GPUs one replica occupies (tensor × pipeline parallel degree). Used for cost. Default 1.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> RoleSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must be less than or equal to maxReplicas ({self.max_replicas})"
            )
        return self


class Roles(_Model):
    """The roles of the fleet: ``prefill`` and ``decode`` (disaggregated) or ``both`` (aggregated)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.both) ? !(has(self.prefill) || has(self.decode)) : (has(self.prefill) && has(self.decode))",
                    "set either both (aggregated) or prefill and decode (disaggregated), not a mix",
                ),
            ]
        }
    )

    prefill: RoleSpec | None = Field(default=None, description="Prefill role of a disaggregated fleet.")
    decode: RoleSpec | None = Field(default=None, description="Decode role of a disaggregated fleet.")
    both: RoleSpec | None = Field(default=None, description="The single role of an aggregated fleet.")

    @model_validator(mode="after")
    def _shape(self) -> Roles:
        if self.both is not None and (self.prefill is not None or self.decode is not None):
            raise ValueError("set either both (aggregated) or prefill and decode (disaggregated), not a mix")
        if self.both is None and (self.prefill is None or self.decode is None):
            raise ValueError("set either both (aggregated) or prefill and decode (disaggregated), not a mix")
        return self

    def items(self) -> list[tuple[str, RoleSpec]]:
        """``(role name, spec)`` for each configured role, prefill before decode."""
        pairs = [("prefill", self.prefill), ("decode", self.decode), ("both", self.both)]
        return [(name, spec) for name, spec in pairs if spec is not None]

    @property
    def disaggregated(self) -> bool:
        """True when prefill and decode are separate roles."""
        return self.both is None


# -------------------------------------------------------------------------------------------------- SLOs


class LatencyObjective(_Model):
    """A latency objective: the given percentile of the latency must stay at or below ``target``."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("duration(self.target) > duration('0s')", "target must be greater than zero", ".target"),
            ]
        }
    )

    percentile: float = Field(
        default=95.0, gt=0.0, lt=100.0,
        description="Percentile of the latency distribution, strictly between 0 and 100. Default 95.",
    )
    target: Duration = Field(description="Latency target, e.g. 1s or 80ms. Must be greater than zero.")
    _target_s: float = PrivateAttr(0.0)

    @model_validator(mode="after")
    def _positive(self) -> LatencyObjective:
        self._target_s = parse_duration(self.target)
        if self._target_s <= 0:
            raise ValueError("target must be greater than zero")
        return self

    @property
    def target_s(self) -> float:
        """The target in seconds (parsed once, on validation)."""
        return self._target_s

    @property
    def quantile(self) -> float:
        """The percentile as a quantile in (0, 1)."""
        return self.percentile / 100.0


class SLOSpec(_Model):
    """Latency service-level objectives the controller keeps, measured per request at the model servers."""

    ttft: LatencyObjective = Field(description="Time to first token (queueing + prefill + KV transfer).")
    itl: LatencyObjective = Field(description="Inter-token latency (time per output token after the first).")
    e2e: LatencyObjective | None = Field(default=None, description="Optional end-to-end request latency objective.")
    attainment: float = Field(
        default=99.0, gt=0.0, le=100.0,
        description=(
            "Share of requests, in percent, that should meet both TTFT and ITL targets; used by the twin's "
            "what-if reports. Default 99."
        ),
    )


# ----------------------------------------------------------------------------------------------- metrics


class Engine(StrEnum):
    """Model-server engine whose metric names the controller reads."""

    VLLM = "vllm"
    SGLANG = "sglang"
    DYNAMO = "dynamo"
    TRTLLM = "trtllm"


class PrometheusSource(_Model):
    """Where to read metrics: a Prometheus-compatible HTTP API (Prometheus, Thanos Query, Mimir)."""

    url: str = Field(
        min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$",
        description="Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090 (Mimir: include /prometheus).",
    )
    timeout: Duration = Field(default="5s", description="Timeout of one query. Default 5s.")
    _timeout_s: float = PrivateAttr(0.0)

    @model_validator(mode="after")
    def _parse(self) -> PrometheusSource:
        self._timeout_s = parse_duration(self.timeout)
        return self

    @property
    def timeout_s(self) -> float:
        """Timeout of one query, seconds."""
        return self._timeout_s


class MetricsSpec(_Model):
    """How the controller observes the pool."""

    prometheus: PrometheusSource = Field(description="The Prometheus-compatible source.")
    engine: Engine = Field(default=Engine.VLLM, description="Engine metric names to use: vllm, sglang, dynamo, trtllm. Default vllm.")
    window: Duration = Field(
        default="1m", description="Rate window for histogram percentiles and rates, e.g. 1m. At least 4× the scrape interval. Default 1m."
    )
    staleness: Duration = Field(
        default="2m", description="Samples older than this are stale; stale data never scales down. Default 2m."
    )
    label_overrides: dict[str, str] = Field(
        default_factory=dict, max_length=16,
        description="Label names to use instead of the defaults, keyed by namespace, pod, role, pool. Default none.",
    )
    metric_overrides: dict[str, str] = Field(
        default_factory=dict, max_length=32,
        description="Metric names to use instead of the engine's defaults, keyed by signal (ttft, itl, queue, ...). Default none.",
    )
    _window_s: float = PrivateAttr(0.0)
    _staleness_s: float = PrivateAttr(0.0)

    @model_validator(mode="after")
    def _parse(self) -> MetricsSpec:
        self._window_s = parse_duration(self.window)
        self._staleness_s = parse_duration(self.staleness)
        return self

    @property
    def window_s(self) -> float:
        """The rate window, seconds."""
        return self._window_s

    @property
    def staleness_s(self) -> float:
        """The staleness limit, seconds."""
        return self._staleness_s


# -------------------------------------------------------------------------------------------------- cost


class AcceleratorOption(_Model):
    """An accelerator type the optimiser may choose, with its price and how many replicas are available."""

    name: str = Field(min_length=1, max_length=63, description="Accelerator type, e.g. H100 or A100-80GB.")
    price_per_gpu_hour: Money = Field(description="Price of one GPU-hour, decimal string, e.g. \"4.00\".")
    max_replicas: int | None = Field(
        default=None, ge=0, le=10000, description="Availability cap: at most this many replicas of this type. Default unbounded."
    )
    profile: str | None = Field(
        default=None, max_length=128, description="Performance profile name for this type, e.g. llama2-70b/a100/tp4."
    )
    _gpu_hour_price: float = PrivateAttr(0.0)

    @model_validator(mode="after")
    def _parse(self) -> AcceleratorOption:
        self._gpu_hour_price = _amount(self.price_per_gpu_hour)
        return self

    @property
    def gpu_hour_price(self) -> float:
        """Price of one GPU-hour as a number (0 when empty)."""
        return self._gpu_hour_price


class CostSpec(_Model):
    """GPU pricing, the hourly budget and the accelerator types the optimiser may use."""

    accelerator: str = Field(default="H100", min_length=1, max_length=63, description="Accelerator of the fleet. Default H100.")
    price_per_gpu_hour: Money = Field(
        default="4.00", description="Price of one GPU-hour in your currency, decimal string. Default \"4.00\"."
    )
    budget_per_hour: Money | None = Field(
        default=None,
        description="Hourly spend cap for the whole fleet. When it cannot buy the SLO, status says BudgetLimited. Default none.",
    )
    allowed_accelerators: list[AcceleratorOption] = Field(
        default_factory=list, max_length=8,
        description="Accelerator types the optimiser may mix, with prices and availability caps. Default: only spec.cost.accelerator.",
    )
    _gpu_hour_price: float = PrivateAttr(0.0)
    _hourly_budget: float | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _parse(self) -> CostSpec:
        self._gpu_hour_price = _amount(self.price_per_gpu_hour)
        self._hourly_budget = float(self.budget_per_hour) if self.budget_per_hour else None
        return self

    @property
    def gpu_hour_price(self) -> float:
        """Price of one GPU-hour of ``accelerator`` as a number (0 when empty)."""
        return self._gpu_hour_price

    @property
    def hourly_budget(self) -> float | None:
        """The hourly spend cap as a number (None: no cap)."""
        return self._hourly_budget


# ------------------------------------------------------------------------------------------ performance


class PerformanceSpec(_Model):
    """What one replica can do: a measured profile that seeds the capacity model (corrected online)."""

    profile: str = Field(
        default="llama2-70b/h100/tp4", min_length=1, max_length=128,
        description="Bundled performance profile (model/accelerator/tp), e.g. llama2-70b/h100/tp4. Default llama2-70b/h100/tp4.",
    )
    cold_start: Duration | None = Field(
        default=None, description="Time from requesting a replica to it serving. Default: the profile's measured value."
    )
    _cold_start_s: float | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _parse(self) -> PerformanceSpec:
        self._cold_start_s = parse_duration(self.cold_start) if self.cold_start else None
        return self

    @property
    def cold_start_s(self) -> float | None:
        """The cold start, seconds (None: the profile's)."""
        return self._cold_start_s


# ----------------------------------------------------------------------------------------------- forecast


class ForecastMethod(StrEnum):
    """Demand forecaster."""

    AUTO = "auto"
    LAST = "last"
    EWMA = "ewma"
    HOLT_WINTERS = "holt-winters"
    OFF = "off"


class ForecastSpec(_Model):
    """Demand forecasting over the provisioning lead time."""

    method: ForecastMethod = Field(
        default=ForecastMethod.AUTO,
        description="auto (online choice by recent error), last, ewma, holt-winters, or off (react only). Default auto.",
    )
    horizon: Duration | None = Field(
        default=None, description="How far ahead to provision. Default: cold start + control interval."
    )
    season: Duration = Field(default="24h", description="Seasonal period for Holt-Winters. Default 24h.")
    quantile: float = Field(
        default=0.9, gt=0.5, lt=1.0,
        description="Upper quantile of the forecast error band to provision for, in (0.5, 1). Default 0.9.",
    )
    _horizon_s: float | None = PrivateAttr(None)
    _season_s: float = PrivateAttr(0.0)

    @model_validator(mode="after")
    def _parse(self) -> ForecastSpec:
        self._horizon_s = parse_duration(self.horizon) if self.horizon else None
        self._season_s = parse_duration(self.season)
        return self

    @property
    def horizon_s(self) -> float | None:
        """The provisioning horizon, seconds (None: cold start + control interval)."""
        return self._horizon_s

    @property
    def season_s(self) -> float:
        """The seasonal period, seconds."""
        return self._season_s


# ------------------------------------------------------------------------------------ actuation, fallback


class Actuation(StrEnum):
    """How decisions reach the workloads."""

    DIRECT = "Direct"
    HPA = "HPA"
    DRY_RUN = "DryRun"


class ManualChangePolicy(StrEnum):
    """What to do when someone changes a target's replicas by hand."""

    PAUSE = "Pause"
    OVERRIDE = "Override"


class FallbackPolicy(StrEnum):
    """What to do after repeated failures to observe the pool."""

    HOLD = "Hold"
    STATIC = "Static"
    MAX = "Max"


class FallbackSpec(_Model):
    """Behaviour when metrics stay unavailable. Bad data always holds (never scales down) first."""

    after_failures: int = Field(
        default=8, ge=1, le=1000,
        description="Consecutive control intervals without usable metrics before the fallback applies. Default 8 (2 min at 15s).",
    )
    policy: FallbackPolicy = Field(
        default=FallbackPolicy.HOLD,
        description="Hold (keep replicas), Static (set spec.fallback.replicas), Max (scale to maxReplicas). Default Hold.",
    )
    replicas: dict[Literal["prefill", "decode", "both"], Annotated[int, Field(ge=0, le=10000)]] = Field(
        default_factory=dict, description="Replicas per role for the Static policy, clamped to [min, max]."
    )


# --------------------------------------------------------------------------------------------------- spec


class InferenceAutoscalerSpec(_Model):
    """Desired behaviour of an InferenceAutoscaler."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("duration(self.controlInterval) >= duration('1s')", "controlInterval must be at least 1s",
                     ".controlInterval"),
            ]
        }
    )

    pool_ref: PoolRef = Field(description="The InferencePool whose model servers this autoscaler sizes.")
    role_label: str = Field(
        default="llm-d.ai/role", min_length=1, max_length=317,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="Pod label whose value (prefill, decode, both) names a pod's role, for discovery. Default llm-d.ai/role.",
    )
    roles: Roles = Field(description="Roles to scale and their bounds.")
    slo: SLOSpec = Field(description="Latency objectives to keep.")
    metrics: MetricsSpec = Field(description="Where and how to read the pool's metrics.")
    performance: PerformanceSpec = Field(
        default_factory=PerformanceSpec, description="Performance profile that seeds the capacity model."
    )
    cost: CostSpec = Field(default_factory=CostSpec, description="GPU prices, budget and accelerator choices.")
    forecast: ForecastSpec = Field(default_factory=ForecastSpec, description="Demand forecasting.")
    behavior: Behavior = Field(default_factory=Behavior, description="Scale-up and scale-down rules (HPA v2 semantics).")
    control_interval: Duration = Field(
        default="15s", description="How often to decide, e.g. 15s (the HPA's sync period). At least 1s. Default 15s."
    )
    actuation: Actuation = Field(
        default=Actuation.DIRECT,
        description="Direct (patch /scale), HPA (publish through external.metrics.k8s.io for an HPA), DryRun (status only). Default Direct.",
    )
    manual_change_policy: ManualChangePolicy = Field(
        default=ManualChangePolicy.PAUSE,
        description=(
            "When a target's replicas change by hand: Pause (record an Event, stop actuating that role for "
            "manualPause) or Override (record an Event, restore the decision). Default Pause."
        ),
    )
    manual_pause: Duration = Field(default="10m", description="How long to leave a role alone after a manual change. Default 10m.")
    fallback: FallbackSpec = Field(default_factory=FallbackSpec, description="What to do when metrics stay unavailable.")

    _control_interval_s: float = PrivateAttr(0.0)
    _manual_pause_s: float = PrivateAttr(0.0)

    @field_validator("control_interval")
    @classmethod
    def _at_least_a_second(cls, value: str) -> str:
        if parse_duration(value) < 1.0:
            raise ValueError("controlInterval must be at least 1s")
        return value

    @model_validator(mode="after")
    def _interval(self) -> InferenceAutoscalerSpec:
        self._control_interval_s = parse_duration(self.control_interval)
        self._manual_pause_s = parse_duration(self.manual_pause)
        return self

    @property
    def control_interval_s(self) -> float:
        """Control interval in seconds (parsed once, on validation)."""
        return self._control_interval_s

    @property
    def manual_pause_s(self) -> float:
        """How long a manually changed role is left alone, seconds."""
        return self._manual_pause_s


# ------------------------------------------------------------------------------------------------- object


class ObjectMeta(BaseModel):
    """The parts of ``metav1.ObjectMeta`` the controller reads; everything else is kept as-is."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: str = ""
    namespace: str = ""
    generation: int | None = None
    resource_version: str | None = None
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class InferenceAutoscaler(_Model):
    """An InferenceAutoscaler object as stored by the API server."""

    printer_columns: ClassVar[list[dict[str, Any]]] = [
        {"name": "Pool", "type": "string", "jsonPath": ".spec.poolRef.name"},
        {"name": "Prefill", "type": "string", "jsonPath": ".status.summary.prefill", "description": "current→desired"},
        {"name": "Decode", "type": "string", "jsonPath": ".status.summary.decode", "description": "current→desired"},
        {"name": "TTFT", "type": "string", "jsonPath": ".status.summary.ttft", "description": "observed/target"},
        {"name": "Queue", "type": "string", "jsonPath": ".status.summary.queue"},
        {"name": "KV", "type": "string", "jsonPath": ".status.summary.kvCache"},
        {"name": "$/h", "type": "string", "jsonPath": ".status.costPerHour"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Reason", "type": "string", "jsonPath": ".status.lastDecision.reason", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]

    api_version: Literal["autoscaler.inference.dev/v1alpha1"] = Field(default="autoscaler.inference.dev/v1alpha1")
    kind: Literal["InferenceAutoscaler"] = Field(default="InferenceAutoscaler")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: InferenceAutoscalerSpec
    status: InferenceAutoscalerStatus | None = None


def _field_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for item in loc:
        path += f"[{item}]" if isinstance(item, int) else (f".{item}" if path else str(item))
    return path


def validation_problems(error: ValidationError, prefix: str) -> list[tuple[str, str]]:
    """``(field path, message)`` pairs for a pydantic error, with camelCase paths under ``prefix``."""
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        loc = tuple(to_camel(p) if isinstance(p, str) else p for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        problems.append((_field_path(prefix, loc), message))
    return problems


def parse_spec(raw: Any, *, source: str = "") -> InferenceAutoscalerSpec:
    """Validate a raw ``spec`` mapping.

    Raises:
        InvalidSpecError: listing every problem with its field path (``spec.roles.prefill.maxReplicas``).
    """
    try:
        return InferenceAutoscalerSpec.model_validate(raw)
    except ValidationError as err:
        raise InvalidSpecError(validation_problems(err, "spec"), source=source) from None


def parse_spec_from_cluster(raw: Any, *, source: str = "") -> tuple[InferenceAutoscalerSpec, tuple[str, ...]]:
    """Validate a ``spec`` read back from the API server, ignoring fields this version does not know.

    The API server has already validated the object against the installed CRD, so a field unknown here
    comes from a newer CRD (an upgrade rolled out before the controller): like every Kubernetes client,
    this version ignores it rather than stop managing the resource. Any other problem is still an error.

    Returns:
        (spec, field paths that were ignored, e.g. ``("spec.newField",)``).

    Raises:
        InvalidSpecError: as :func:`parse_spec`, when anything but unknown fields is wrong.
    """
    try:
        return InferenceAutoscalerSpec.model_validate(raw), ()
    except ValidationError as err:
        errors = err.errors(include_url=False)
        if not errors or any(e["type"] != "extra_forbidden" for e in errors):
            raise InvalidSpecError(validation_problems(err, "spec"), source=source) from None
    pruned = copy.deepcopy(raw)
    ignored: list[str] = []
    for e in errors:
        *parents, leaf = e["loc"]
        node: Any = pruned
        for key in parents:
            node = node[key]
        if isinstance(node, dict):
            node.pop(leaf, None)
        ignored.append(_field_path("spec", tuple(e["loc"])))
    try:
        return InferenceAutoscalerSpec.model_validate(pruned), tuple(ignored)
    except ValidationError as err2:
        raise InvalidSpecError(validation_problems(err2, "spec"), source=source) from None
