"""What the SLO policy remembers between steps: named, immutable records built by keyword.

Units: times are Unix seconds, rates are per second (requests/s or tokens/s), fleets are replicas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from autoscaler.core.capacity import Demand
from autoscaler.core.forecast import SeriesState
from autoscaler.core.pid import PIDState
from autoscaler.core.stabilize import StabilizationState
from autoscaler.core.types import Role

__all__ = ["Burst", "Climb", "DemandSample", "RoleState", "SLOState", "StepMemory"]


class DemandSample(NamedTuple):
    """Demand observed at one step.

    ``output_asked`` equals ``output_served`` except while decode sequences wait for a slot: then the served
    rate is the fleet's throughput and the asked rate scales it by the sequences in the system over those
    running (:func:`autoscaler.core.slo.demand.asked_output_rate`).
    """

    time_s: float
    arrival_rate: float  # requests/s
    prompt_tokens_rate: float  # prompt tokens/s
    output_served: float  # output tokens/s served
    output_asked: float  # output tokens/s asked for

    @classmethod
    def of(cls, time_s: float, demand: Demand, output_asked: float | None = None) -> DemandSample:
        """The sample of ``demand`` at ``time_s``; the asked output rate defaults to the served one."""
        served = demand.generation_tokens_rate
        return cls(
            time_s,
            demand.arrival_rate,
            demand.prompt_tokens_rate,
            served,
            served if output_asked is None else output_asked,
        )


class Burst(NamedTuple):
    """A remembered SLO-missing burst: when its last miss was seen, which role, the fleet it asked for."""

    time_s: float
    role: Role
    replicas: float


class Climb(NamedTuple):
    """How far a signal climbed within one lead time after the sample at ``time_s`` (same unit as the signal,
    at least 0)."""

    time_s: float
    rise: float


@dataclass(frozen=True, slots=True)
class RoleState:
    """Per-role memory: PID state, HPA-behaviour history, and whether the last output was limited."""

    pid: PIDState = field(default_factory=PIDState)
    stabilization: StabilizationState = field(default_factory=StabilizationState)
    limited: bool = False


@dataclass(frozen=True, slots=True)
class StepMemory:
    """The largest climb of a signal within one lead time over a sliding window, kept in O(distinct maxima)
    rather than every sample of the window.

    Invariant: ``climbs`` is a monotone queue — oldest first, each climb larger than every later one — so its
    head is the window's maximum.

    Attributes:
        climbs: the climbs (:class:`Climb`) that exceed every later one, oldest first.
        done_through: time of the newest sample whose climb is recorded, Unix seconds.
        last_climb_times: times of the last four recorded climbs (a maximum needs four to be trusted).
        last_sample_times: times of the last eight samples recorded (the window needs eight).
    """

    climbs: tuple[Climb, ...] = ()
    done_through: float | None = None
    last_climb_times: tuple[float, ...] = ()
    last_sample_times: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class SLOState:
    """Everything the controller remembers between steps.

    Attributes:
        arrivals, prompt_tokens, output_tokens: forecast series of the three demand signals.
        ttft_correction, itl_correction: learned observed/predicted ratios (1 = the profile is right).
        roles: per-role state.
        failures: consecutive steps without usable data.
        last_time: time of the last step, Unix seconds.
        first_time: time of the first usable observation, Unix seconds.
        recent: observed demand over the last ``max(peak hold, rise window, 2)`` lead times, oldest first.
        decode_step: the decode step reserve's memory.
        bursts: remembered bursts, compacted (:func:`autoscaler.core.slo.bursts.compact_bursts`), oldest
            first.
    """

    arrivals: SeriesState = field(default_factory=SeriesState)
    prompt_tokens: SeriesState = field(default_factory=SeriesState)
    output_tokens: SeriesState = field(default_factory=SeriesState)
    ttft_correction: float = 1.0
    itl_correction: float = 1.0
    roles: Mapping[Role, RoleState] = field(default_factory=dict)
    failures: int = 0
    last_time: float | None = None
    first_time: float | None = None
    recent: tuple[DemandSample, ...] = ()
    decode_step: StepMemory = field(default_factory=StepMemory)
    bursts: tuple[Burst, ...] = ()
