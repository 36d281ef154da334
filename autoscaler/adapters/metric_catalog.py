"""What the external metrics API serves: each metric's name, meaning (units) and how to read it from a decision.

Shared by the ``external.metrics.k8s.io`` server (:mod:`autoscaler.adapters.metrics_api`) and the controller's
Prometheus exposition (:mod:`autoscaler.adapters.exporter`), so both carry the same numbers under the same names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from autoscaler.core.types import Role
from autoscaler.ports import DecisionRecord

__all__ = ["METRICS", "MetricDefinition", "ValueFn", "series_labels"]

ValueFn = Callable[[DecisionRecord, Role], float | None]


def _desired(rec: DecisionRecord, role: Role) -> float | None:
    v = rec.decision.desired.get(role)
    return None if v is None else float(v)


def _slo_ratio(signal: str) -> ValueFn:
    def value(rec: DecisionRecord, role: Role) -> float | None:
        ro = rec.observation.roles.get(role)
        target = rec.slo_targets.get(signal)
        observed = None if ro is None else getattr(ro, signal)
        if observed is None or not target or target <= 0 or not math.isfinite(observed):
            return None
        return float(observed) / target

    return value


def _queue(per_replica: bool) -> ValueFn:
    def value(rec: DecisionRecord, role: Role) -> float | None:
        ro = rec.observation.roles.get(role)
        if ro is None or ro.queue_depth is None or not math.isfinite(ro.queue_depth):
            return None
        # With no Ready replica the whole queue sits on "one" replica: a large value that asks for scale-up.
        return ro.queue_depth / max(ro.ready, 1) if per_replica else ro.queue_depth

    return value


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """One external metric: its name, meaning (units) and how to read it from a record for a role."""

    name: str
    description: str
    value: ValueFn


METRICS: Mapping[str, MetricDefinition] = {
    m.name: m
    for m in (
        MetricDefinition(
            "inference_autoscaler_desired_replicas",
            "Replicas the controller wants for the role (count). Use with target type AverageValue, "
            'averageValue "1": the HPA then sets exactly this many replicas.',
            _desired,
        ),
        MetricDefinition(
            "inference_autoscaler_ttft_slo_ratio",
            "Observed time-to-first-token at the SLO percentile divided by the TTFT target (1 = at the SLO).",
            _slo_ratio("ttft"),
        ),
        MetricDefinition(
            "inference_autoscaler_itl_slo_ratio",
            "Observed inter-token latency at the SLO percentile divided by the ITL target (1 = at the SLO).",
            _slo_ratio("itl"),
        ),
        MetricDefinition(
            "inference_autoscaler_queue_depth",
            "Requests waiting for the role (count). With target type AverageValue (the per-replica target) the HPA "
            "sets ceil(queue / target): the per-pod queue-depth HPA, independent of any Ready count.",
            _queue(per_replica=False),
        ),
        MetricDefinition(
            "inference_autoscaler_queue_per_replica",
            "Requests waiting per Ready replica of the role (count; the whole queue when none is Ready).",
            _queue(per_replica=True),
        ),
    )
}


def series_labels(rec: DecisionRecord, role: Role) -> dict[str, str]:
    """Labels of one series: the InferenceAutoscaler's labels, then the synthetic ones on top."""
    labels = dict(rec.labels)
    labels.update({"inferenceautoscaler": rec.name, "pool": rec.pool, "role": role.value})
    return labels
