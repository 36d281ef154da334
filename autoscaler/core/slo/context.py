"""The fixed inputs of one step: the spec's targets, the profiles, the tuning and the forecast settings.

Built once per ``decide`` (:func:`step_context`) so the stages share one reading of the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from autoscaler.api.v1alpha1 import ForecastMethod, InferenceAutoscalerSpec, RoleSpec
from autoscaler.core.capacity import ModelParams
from autoscaler.core.forecast import ForecastConfig
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.slo.tuning import Tuning
from autoscaler.core.types import Role

__all__ = ["StepContext", "forecast_config", "spec_roles", "step_context"]


def spec_roles(spec: InferenceAutoscalerSpec) -> list[tuple[Role, RoleSpec]]:
    """Configured roles in order (prefill, decode) or (both)."""
    return [(Role(name), rs) for name, rs in spec.roles.items()]


@dataclass(frozen=True, slots=True)
class StepContext:
    """Everything a step reads besides the observation and the state.

    Attributes:
        spec: the custom resource's spec.
        profile: performance profile of ``spec.cost.accelerator``.
        profiles: extra profiles by accelerator or profile name.
        tuning: the policy's knobs.
        model: capacity-model parameters of this spec (disaggregation, slot margin scaled by the headroom).
        forecast: forecast settings; ``forecast.horizon_s`` is the lead time, seconds.
        roles: configured roles in order.
        ttft_target_s, itl_target_s: SLO targets, seconds.
        q_ttft, q_itl: SLO percentiles as quantiles in (0, 1).
        metrics_window_s: the rate window, seconds.
    """

    spec: InferenceAutoscalerSpec
    profile: PerformanceProfile
    profiles: Mapping[str, PerformanceProfile]
    tuning: Tuning
    model: ModelParams
    forecast: ForecastConfig
    roles: list[tuple[Role, RoleSpec]]
    ttft_target_s: float
    itl_target_s: float
    q_ttft: float
    q_itl: float
    metrics_window_s: float

    @property
    def lead_s(self) -> float:
        """The provisioning lead time (cold start + control interval unless the spec sets a horizon), s."""
        return self.forecast.horizon_s

    @property
    def itl_goal_s(self) -> float:
        """The ITL decode is sized for before the learned correction, seconds."""
        return self.tuning.itl_headroom * self.itl_target_s


def _cold_start_s(spec: InferenceAutoscalerSpec, profile: PerformanceProfile) -> float:
    cs = spec.performance.cold_start_s
    return cs if cs is not None else profile.cold_start_s


def forecast_config(
    spec: InferenceAutoscalerSpec, profile: PerformanceProfile, tuning: Tuning
) -> ForecastConfig:
    """The forecast settings implied by a spec: horizon = cold start + interval unless set.

    Holt-Winters keeps two seasons of buckets; a season finer than 2,000 buckets drops seasonality rather
    than grow the state."""
    interval = spec.control_interval_s
    horizon = spec.forecast.horizon_s
    if horizon is None:
        horizon = _cold_start_s(spec, profile) + interval
    season = spec.forecast.season_s
    bucket = tuning.forecast.bucket_s or max(interval, season / 288.0 if season > 0 else 60.0)
    season_buckets = round(season / bucket) if season > 0 else 0
    max_history = max(720, 2 * season_buckets + 8)
    if season_buckets > 2000:
        season_buckets = 0
        max_history = 720
    method = (
        spec.forecast.method.value
        if isinstance(spec.forecast.method, ForecastMethod)
        else str(spec.forecast.method)
    )
    return ForecastConfig(
        horizon_s=horizon,
        bucket_s=bucket,
        season_buckets=season_buckets,
        method=method,
        quantile=spec.forecast.quantile,
        ewma_tau_s=tuning.forecast.ewma_tau_s,
        max_history=max_history,
        refit_every=max(96, season_buckets),
        max_band=tuning.forecast.max_band,
    )


def step_context(
    spec: InferenceAutoscalerSpec,
    profile: PerformanceProfile,
    profiles: Mapping[str, PerformanceProfile],
    tuning: Tuning,
) -> StepContext:
    """The step's fixed inputs (docs/decisions/0003 on why the headroom scales the slot margin)."""
    model = replace(
        tuning.model,
        disaggregated=spec.roles.disaggregated,
        slot_margin=tuning.model.slot_margin / min(1.0, max(0.25, tuning.headroom)),
    )
    slo = spec.slo
    return StepContext(
        spec=spec,
        profile=profile,
        profiles=profiles,
        tuning=tuning,
        model=model,
        forecast=forecast_config(spec, profile, tuning),
        roles=spec_roles(spec),
        ttft_target_s=slo.ttft.target_s,
        itl_target_s=slo.itl.target_s,
        q_ttft=slo.ttft.quantile,
        q_itl=slo.itl.quantile,
        metrics_window_s=spec.metrics.window_s,
    )
