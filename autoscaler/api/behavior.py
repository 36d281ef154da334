"""``spec.behavior``: HPA-v2-style scale-up and scale-down rules (stabilisation windows, rate policies,
tolerance), with the HPA's defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PrivateAttr, model_validator

from autoscaler.api.durations import Duration, parse_duration
from autoscaler.api.wire import WireModel as _Model

__all__ = ["Behavior", "ScalingPolicy", "ScalingRules"]



class ScalingPolicy(_Model):
    """One rate limit, as in autoscaling/v2: change by at most ``value`` pods or percent per ``period``."""

    type: Literal["Pods", "Percent"] = Field(description="Pods (absolute) or Percent (of current replicas).")
    value: int = Field(gt=0, le=10000, description="Amount of change allowed per period.")
    period: Duration = Field(default="15s", description="Length of the period the limit applies to, up to 30m. Default 15s.")
    _period_s: float = PrivateAttr(0.0)

    @model_validator(mode="after")
    def _parse(self) -> ScalingPolicy:
        self._period_s = parse_duration(self.period)
        return self

    @property
    def period_s(self) -> float:
        """Length of the period, seconds."""
        return self._period_s


def _default_up_policies() -> list[ScalingPolicy]:
    return [ScalingPolicy(type="Percent", value=100, period="15s"), ScalingPolicy(type="Pods", value=4, period="15s")]


def _default_down_policies() -> list[ScalingPolicy]:
    return [ScalingPolicy(type="Percent", value=100, period="15s")]


class ScalingRules(_Model):
    """Rate limits and stabilisation for one direction, with autoscaling/v2 semantics."""

    stabilization_window: Duration | None = Field(
        default=None,
        description=(
            "Recommendations over this window are considered (min for scale-up, max for scale-down) to prevent "
            "flapping. Default 0s up, 5m down (the HPA's defaults)."
        ),
    )
    select_policy: Literal["Max", "Min", "Disabled"] = Field(
        default="Max", description="Which policy wins when several apply: Max, Min, or Disabled (no change). Default Max."
    )
    policies: list[ScalingPolicy] | None = Field(
        default=None, max_length=10,
        description="Rate limits. Default up: 100 % or 4 pods per 15s (Max); down: 100 % per 15s (the HPA's defaults).",
    )
    tolerance: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Relative change ignored as noise, fraction. Default 0.1 (10 %)."
    )
    _window_s: float | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _parse(self) -> ScalingRules:
        w = self.stabilization_window
        self._window_s = parse_duration(w) if w else None
        return self

    @property
    def stabilization_window_s(self) -> float | None:
        """The stabilisation window, seconds (None: the direction's default)."""
        return self._window_s


class Behavior(_Model):
    """Scale-up and scale-down rules (HorizontalPodAutoscaler v2 ``behavior`` semantics)."""

    scale_up: ScalingRules = Field(default_factory=ScalingRules, description="Rules for scaling up.")
    scale_down: ScalingRules = Field(default_factory=ScalingRules, description="Rules for scaling down.")

    def up_window_s(self) -> float:
        """Scale-up stabilisation window in seconds (default 0)."""
        w = self.scale_up.stabilization_window_s
        return w if w is not None else 0.0

    def down_window_s(self) -> float:
        """Scale-down stabilisation window in seconds (default 300)."""
        w = self.scale_down.stabilization_window_s
        return w if w is not None else 300.0

    def up_policies(self) -> list[ScalingPolicy]:
        """Scale-up policies, with the HPA's defaults when unset."""
        return self.scale_up.policies if self.scale_up.policies is not None else _default_up_policies()

    def down_policies(self) -> list[ScalingPolicy]:
        """Scale-down policies, with the HPA's defaults when unset."""
        return self.scale_down.policies if self.scale_down.policies is not None else _default_down_policies()
