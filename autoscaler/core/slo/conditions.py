"""The fleet's conditions in one step, each computed once: busy, decode congested, draining, steady."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.core.capacity import Demand
from autoscaler.core.types import Role, RoleObservation

__all__ = ["Conditions", "assess", "decode_congested"]


def decode_congested(dec: RoleObservation | None) -> bool:
    """More than one sequence waiting per ready decode replica (a momentary 1–2 is admission noise).

    While decode is congested, a disaggregated request's TTFT includes its wait for a decode slot, so TTFT
    measures decode, not prefill."""
    return dec is not None and (dec.queue_depth or 0.0) > max(1, dec.ready)


@dataclass(frozen=True, slots=True)
class Conditions:
    """What kind of step this is.

    Attributes:
        busy: at least ``tuning.learning.min_rate`` requests/s arrive.
        decode_congested: :func:`decode_congested` of the decode role.
        draining: some role's TTFT is longer than the metrics window: requests from before the window (a
            backlog after a start-up or an outage) are draining, which neither the window's demand nor the
            present fleet explains.
        steady: no replica starting, every role's data trusted, decode not congested, nothing draining.
    """

    busy: bool
    decode_congested: bool
    draining: bool
    steady: bool

    @property
    def learning(self) -> bool:
        """Latencies may train the model's corrections and record bursts: busy and steady."""
        return self.busy and self.steady


def assess(
    roles: Mapping[Role, RoleObservation], current: Demand, min_rate: float, metrics_window_s: float
) -> Conditions:
    """The conditions of ``roles`` at the ``current`` demand (``min_rate`` requests/s makes a step busy)."""
    congested = decode_congested(roles.get(Role.DECODE))
    draining = any(ro.ttft is not None and ro.ttft > metrics_window_s for ro in roles.values())
    steady = (
        all(ro.starting == 0 and ro.trustworthy for ro in roles.values()) and not congested and not draining
    )
    return Conditions(
        busy=current.arrival_rate >= min_rate, decode_congested=congested, draining=draining, steady=steady
    )
