"""PID on the SLO error that trims the capacity model.

Error ``e = ln(observed percentile / (setpoint · target))``: positive when too slow, scale-free, symmetric
in ratio. The output ``u`` is a log-factor; the controller multiplies the model's required replicas by
``exp(u)``, so feedback trims the feedforward instead of replacing it::

    u = Kp e + I − Kd ẏ_f,     I ← I + Ki e Δt,     ẏ_f ← ẏ_f + (Δt / (Tf + Δt)) ((y − y_prev)/Δt − ẏ_f)

* derivative on the (log) measurement ``y``, not on the error, so setpoint changes give no kick, and filtered
  by a first-order lag ``Tf``;
* anti-windup by conditional integration: the integral does not move when ``u`` sits at a limit and ``e``
  pushes further into it, nor while the plant cannot respond (replicas starting, role at its bounds or
  rate-limited — bumpless when limits bind), nor on untrustworthy data;
* ``I`` itself is clamped to the output range, and ``u`` to ``[ln f_min, ln f_max]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PIDConfig", "PIDState", "pid_step"]


@dataclass(frozen=True, slots=True)
class PIDConfig:
    """Gains and limits (e in log units, time in seconds).

    Attributes:
        kp: proportional gain, log-factor per unit log error.
        ki: integral gain, per second.
        kd: derivative gain, seconds.
        derivative_filter_s: time constant of the derivative filter, seconds.
        factor_min: smallest trim factor (exp of the lower output limit).
        factor_max: largest trim factor.
        error_limit: the log error is clipped to ±this before use. A latency many times its target is a
            queue, which the controller sizes explicitly (backlog terms); the PID corrects the model's bias,
            and a 40× TTFT during a burst must not double the fleet by itself.
    """

    kp: float = 0.3
    ki: float = 0.004
    kd: float = 0.0
    derivative_filter_s: float = 60.0
    factor_min: float = 0.8
    factor_max: float = 2.0
    error_limit: float = 0.7


@dataclass(frozen=True, slots=True)
class PIDState:
    """Integral, filtered derivative of the measurement, previous measurement and time."""

    integral: float = 0.0
    derivative: float = 0.0
    last_measurement: float | None = None
    last_time: float | None = None
    output: float = 0.0


def pid_step(
    cfg: PIDConfig,
    state: PIDState,
    measurement: float | None,
    setpoint: float,
    now: float,
    *,
    hold: bool = False,
) -> PIDState:
    """Advance the PID one step; ``state.output`` is the new log trim factor.

    ``measurement`` and ``setpoint`` are positive latencies (seconds). ``measurement=None`` keeps the last
    output (bumpless: a signal that vanishes must not step the fleet); ``hold=True`` freezes the integral
    and the derivative.
    """
    lo, hi = math.log(cfg.factor_min), math.log(cfg.factor_max)
    if measurement is None or not (measurement > 0 and math.isfinite(measurement)) or setpoint <= 0:
        return PIDState(
            state.integral, state.derivative, state.last_measurement, now, min(hi, max(lo, state.output))
        )
    y = math.log(measurement)
    e = max(-cfg.error_limit, min(cfg.error_limit, y - math.log(setpoint)))
    dt = 0.0 if state.last_time is None else max(0.0, now - state.last_time)
    deriv = state.derivative
    if state.last_measurement is not None and dt > 0:
        raw = (y - state.last_measurement) / dt
        deriv = deriv + (dt / (cfg.derivative_filter_s + dt)) * (raw - deriv)
    integral = state.integral
    unclamped = cfg.kp * e + integral - cfg.kd * deriv
    saturated_high = unclamped >= hi and e > 0
    saturated_low = unclamped <= lo and e < 0
    if not hold and not saturated_high and not saturated_low:
        integral = min(hi, max(lo, integral + cfg.ki * e * dt))
    u = min(hi, max(lo, cfg.kp * e + integral - cfg.kd * deriv))
    return PIDState(integral, deriv, y, now, u)
