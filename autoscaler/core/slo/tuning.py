"""Controller knobs that are not part of the custom resource, in frozen groups.

docs/control.md explains each knob; docs/decisions/0003–0006 record why the defaults are what they are.
Durations are given in lead times (cold start + control interval), shares are fractions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autoscaler.core.capacity import ModelParams
from autoscaler.core.pid import PIDConfig

__all__ = ["BurstTuning", "ForecastTuning", "LearningTuning", "ReserveTuning", "Tuning"]


@dataclass(frozen=True, slots=True)
class LearningTuning:
    """When and how fast the capacity model's corrections are learned.

    Attributes:
        correction_gain: gain of the observed/predicted correction filter, 0–1 per step.
        correction_floor: lower clamp of the learned corrections (1: the fleet is never learned to be faster
            than its profile).
        min_rate: requests/s below which latencies teach nothing and time does not count towards the peak
            hold.
        ttft_share: TTFT observations below this share of the TTFT target do not train the TTFT correction.
        itl_share: ITL observations below this share of the ITL target do not train the ITL correction.
    """

    correction_gain: float = 0.1
    correction_floor: float = 1.0
    min_rate: float = 0.05
    ttft_share: float = 0.5
    itl_share: float = 0.5


@dataclass(frozen=True, slots=True)
class ForecastTuning:
    """Forecaster settings outside the spec.

    Attributes:
        bucket_s: Holt-Winters bucket width, seconds (None: season/288, at least the control interval).
        ewma_tau_s: EWMA time constant, seconds.
        max_band: cap on the point forecast's residual band, log units (0 = the point forecast itself).
    """

    bucket_s: float | None = None
    ewma_tau_s: float = 60.0
    max_band: float = 0.0


@dataclass(frozen=True, slots=True)
class ReserveTuning:
    """Capacity kept beyond the current demand, in lead times (0 turns a reserve off).

    Attributes:
        peak_hold_leads: provision at least the largest demand of this many busy lead times.
        rise_window_leads: add the forecast quantile of the climbs within one lead time seen over this many
            lead times (off without forecasting).
        decode_step_window_leads: decode also keeps the largest climb of output tokens/s within one lead time
            seen over this many lead times, untrimmed by the PID (off without forecasting).
    """

    peak_hold_leads: float = 1.0
    rise_window_leads: float = 10.0
    decode_step_window_leads: float = 40.0


@dataclass(frozen=True, slots=True)
class BurstTuning:
    """The burst floor: SLO misses the minute-scale demand does not explain (bursts shorter than the rate
    window).

    Attributes:
        window_leads: how long, in lead times, a burst holds its role's floor (0 turns it off).
        season_share: the window is at most this share of ``spec.forecast.season`` (0: no cap).
        min_events: separate bursts (more than a lead time apart) before the floor applies; the floor is the
            fleet that this many of them each asked for.
        ratio_max: a burst asks for at most this many times the ready fleet that missed; also the most by
            which a decode slot queue scales the served output rate into the asked one.
        utilization_max: prefill misses above this per-replica utilisation (0–1) are a fleet catching up, not
            a burst.
    """

    window_leads: float = 40.0
    season_share: float = 0.25
    min_events: int = 2
    ratio_max: float = 2.0
    utilization_max: float = 0.7


@dataclass(frozen=True, slots=True)
class Tuning:
    """All knobs of the SLO policy.

    Attributes:
        headroom: share of the TTFT waiting budget (target − no-wait floor) the fleet is sized to use. The
            main knob: lower is safer and dearer; above 1 sizes beyond the target. It also scales decode's
            slot margin (by ``1 / min(1, max(0.25, headroom))``).
        itl_headroom: decode is sized for ``itl_headroom × ITL target``, fraction in (0, 1].
        pid: PID gains and trim limits.
        model: capacity-model assumptions.
        learning, forecast, reserve, bursts: the groups above.
    """

    headroom: float = 0.5
    itl_headroom: float = 0.9
    pid: PIDConfig = field(default_factory=PIDConfig)
    model: ModelParams = field(default_factory=ModelParams)
    learning: LearningTuning = field(default_factory=LearningTuning)
    forecast: ForecastTuning = field(default_factory=ForecastTuning)
    reserve: ReserveTuning = field(default_factory=ReserveTuning)
    bursts: BurstTuning = field(default_factory=BurstTuning)
