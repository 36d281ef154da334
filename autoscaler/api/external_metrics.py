"""Wire types of the ``external.metrics.k8s.io/v1beta1`` API and of ``meta/v1`` ``Status``.

These are the JSON bodies the Kubernetes aggregator proxies to the HorizontalPodAutoscaler controller. Field
names and casing follow ``k8s.io/metrics/pkg/apis/external_metrics/v1beta1`` and ``apimachinery``'s
``metav1.Status`` exactly; see ``docs/hpa.md`` for the metric names this project serves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "GROUP",
    "GROUP_VERSION",
    "VERSION",
    "APIResource",
    "APIResourceList",
    "ExternalMetricValue",
    "ExternalMetricValueList",
    "ListMeta",
    "Status",
    "StatusDetails",
    "rfc3339",
]

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


def rfc3339(unix_seconds: float) -> str:
    """RFC 3339 UTC timestamp, second precision (``metav1.Time``'s form), e.g. ``2024-05-01T12:00:00Z``."""
    return datetime.fromtimestamp(unix_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class APIResource(_Wire):
    """One resource in a discovery document; here, one metric name."""

    name: str = Field(description="Metric name as it appears in the URL path.")
    singular_name: str = Field("", alias="singularName", description="Unused for metrics; empty.")
    namespaced: bool = Field(True, description="External metrics are always read per namespace.")
    kind: str = Field("ExternalMetricValueList", description="Kind returned by GET on this resource.")
    verbs: list[str] = Field(default_factory=lambda: ["get"], description="Only 'get' is served.")


class APIResourceList(_Wire):
    """Discovery document served at ``/apis/external.metrics.k8s.io/v1beta1``."""

    kind: Literal["APIResourceList"] = "APIResourceList"
    api_version: Literal["v1"] = Field("v1", alias="apiVersion")
    group_version: str = Field(GROUP_VERSION, alias="groupVersion")
    resources: list[APIResource] = Field(default_factory=list)


class ListMeta(_Wire):
    """``metav1.ListMeta``; the metrics API sets none of its fields."""

    self_link: str | None = Field(None, alias="selfLink")


class ExternalMetricValue(_Wire):
    """One metric value for one labelled series.

    Attributes:
        metric_name: the metric's name.
        metric_labels: labels identifying the series (the InferenceAutoscaler's labels plus synthetic ones).
        timestamp: when the value was computed, RFC 3339.
        window_seconds: the window the underlying measurements were aggregated over, seconds.
        value: the value as a Kubernetes Quantity string (``"1500m"``).
    """

    metric_name: str = Field(alias="metricName")
    metric_labels: dict[str, str] = Field(default_factory=dict, alias="metricLabels")
    timestamp: str
    window_seconds: int | None = Field(None, alias="windowSeconds")
    value: str


class ExternalMetricValueList(_Wire):
    """Reply to ``GET .../namespaces/{ns}/{metric}``; never empty when returned with 200."""

    kind: Literal["ExternalMetricValueList"] = "ExternalMetricValueList"
    api_version: Literal["external.metrics.k8s.io/v1beta1"] = Field(
        "external.metrics.k8s.io/v1beta1", alias="apiVersion"
    )
    metadata: ListMeta = Field(default_factory=ListMeta)
    items: list[ExternalMetricValue]


class StatusDetails(_Wire):
    """``metav1.StatusDetails``: which object the failure is about."""

    name: str | None = None
    group: str | None = None
    kind: str | None = None
    retry_after_seconds: int | None = Field(None, alias="retryAfterSeconds")


class Status(_Wire):
    """``metav1.Status`` returned with every error (the aggregator and kubectl show ``message``)."""

    kind: Literal["Status"] = "Status"
    api_version: Literal["v1"] = Field("v1", alias="apiVersion")
    metadata: ListMeta = Field(default_factory=ListMeta)
    status: Literal["Failure", "Success"] = "Failure"
    message: str = ""
    reason: str = Field(
        "", description="Machine-readable: NotFound, Unauthorized, Forbidden, BadRequest, ..."
    )
    details: StatusDetails | None = None
    code: int = Field(description="HTTP status code, repeated in the body.")
