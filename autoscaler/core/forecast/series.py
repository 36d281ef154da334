"""One forecast series: online last-value, EWMA and Holt-Winters forecasters with selection by recent error.

The model, per signal ``y`` (a rate, so non-negative):

* **last**: ``ŷ(t+h) = y(t)``.
* **ewma**: ``L ← L + a (y − L)`` with ``a = 1 − exp(−Δt / τ)``; ``ŷ(t+h) = L``.
* **holt-winters**: additive seasonality with a damped additive trend on bucket means ``x_n`` (buckets of
  ``bucket_s`` seconds, season of ``m`` buckets, seasonal slot ``n mod m`` so the phase follows wall time)::

      ℓ_n = α (x_n − s_{n−m}) + (1 − α)(ℓ_{n−1} + φ b_{n−1})
      b_n = β (ℓ_n − ℓ_{n−1}) + (1 − β) φ b_{n−1}
      s_n = γ (x_n − ℓ_n) + (1 − γ) s_{n−m}
      x̂_{n+k} = ℓ_n + (φ + φ² + … + φ^k) b_n + s_{n+k−m}

  (α, β, γ, φ) minimise the one-step squared error on the stored history (``scipy.optimize.minimize``,
  L-BFGS-B), refitted every ``refit_every`` buckets only, so a typical update costs microseconds. Until one
  full season is stored (or with ``m = 0``) the seasonal terms are zero: a damped Holt trend.

Every sample also records each method's forecast for ``t + h``; when that time arrives the log error
``r = ln((y + ε) / (ŷ + ε))`` is scored. ``auto`` picks the method with the lowest exponentially weighted
mean ``|r|``; the provisioned value is ``ŷ · exp(Q_q(r))``, the upper ``q`` quantile of that method's recent
residuals (never below ``ŷ``), which turns the point forecast into a band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import minimize

__all__ = [
    "METHODS",
    "Forecast",
    "ForecastConfig",
    "HWParams",
    "SeriesState",
    "fit_holt_winters",
    "forecast",
    "holt_winters_run",
    "initial_series",
    "update",
]

#: Forecasting methods in the order their per-method tuples are stored.
METHODS: tuple[str, ...] = ("last", "ewma", "holt-winters")


@dataclass(frozen=True, slots=True)
class ForecastConfig:
    """Settings of one forecast series.

    Attributes:
        horizon_s: how far ahead to forecast, seconds (the provisioning lead time).
        bucket_s: Holt-Winters bucket width, seconds.
        season_buckets: buckets per season; 0 disables seasonality.
        method: ``auto``, ``last``, ``ewma``, ``holt-winters`` or ``off`` (the last value, no band).
        quantile: upper quantile of the residuals to provision for, in (0.5, 1).
        ewma_tau_s: EWMA time constant, seconds.
        refit_every: refit Holt-Winters parameters every this many buckets.
        max_history: most buckets kept for fitting (≥ 2 seasons is needed for seasonality).
        error_halflife: half-life of the error score, in resolved forecasts.
        max_residuals: residuals kept per method for the quantile band.
        min_residuals: below this many residuals, ``default_band`` (log units) is used instead.
        default_band: band used before enough residuals exist, log units (0.1 ≈ +10 %).
        max_band: largest band, log units (0.4 ≈ +50 %): a few large residuals — the first minutes, a
            saturated fleet's throughput snapping back — must not multiply the provisioned demand.
    """

    horizon_s: float
    bucket_s: float = 60.0
    season_buckets: int = 0
    method: str = "auto"
    quantile: float = 0.9
    ewma_tau_s: float = 60.0
    refit_every: int = 96
    max_history: int = 720
    error_halflife: float = 20.0
    max_residuals: int = 120
    min_residuals: int = 10
    default_band: float = 0.1
    max_band: float = 0.4


@dataclass(frozen=True, slots=True)
class HWParams:
    """Holt-Winters smoothing parameters: level α, trend β, season γ, damping φ (all in [0, 1])."""

    alpha: float = 0.5
    beta: float = 0.1
    gamma: float = 0.2
    phi: float = 0.9


@dataclass(frozen=True, slots=True)
class SeriesState:
    """Everything one series remembers. Immutable: :func:`update` returns a new one.

    Attributes:
        time: time of the last sample, Unix seconds (None before the first).
        last: last sample value.
        ewma: EWMA level.
        bucket_index: index ``floor(t / bucket_s)`` of the bucket being filled.
        bucket_sum, bucket_n: running sum and count of samples in that bucket.
        history: completed bucket means, oldest first (at most ``max_history``).
        level, trend: Holt-Winters level and trend after the last completed bucket.
        season: seasonal offsets by slot ``n mod m`` (empty without seasonality or before initialisation).
        last_bucket: index of the last completed bucket folded into the level.
        params: current Holt-Winters parameters.
        since_fit: buckets completed since the last fit.
        fitted: whether parameters have been fitted at least once (first fit after 16 buckets).
        pending: ``(target_time, forecast per method)`` not yet scored.
        scores: exponentially weighted mean |log error| per method (None until scored).
        residuals: recent log residuals per method, oldest first.
    """

    time: float | None = None
    last: float | None = None
    ewma: float | None = None
    bucket_index: int | None = None
    bucket_sum: float = 0.0
    bucket_n: int = 0
    history: tuple[float, ...] = ()
    level: float | None = None
    trend: float = 0.0
    season: tuple[float, ...] = ()
    last_bucket: int | None = None
    params: HWParams = field(default_factory=HWParams)
    since_fit: int = 0
    fitted: bool = False
    pending: tuple[tuple[float, tuple[float, ...]], ...] = ()
    scores: tuple[float | None, ...] = (None, None, None)
    residuals: tuple[tuple[float, ...], ...] = ((), (), ())


@dataclass(frozen=True, slots=True)
class Forecast:
    """A forecast at ``horizon_s``: the point value, the provisioned upper value and the method used."""

    mean: float
    upper: float
    method: str
    horizon_s: float


def initial_series() -> SeriesState:
    """The state before any sample."""
    return SeriesState()


# --------------------------------------------------------------------------------------- Holt-Winters core


def holt_winters_run(
    values: np.ndarray | tuple[float, ...], params: HWParams, m: int, first_index: int
) -> tuple[float, float, tuple[float, ...], float]:
    """Run the Holt-Winters recursion over ``values`` (bucket means whose first has index ``first_index``).

    Returns ``(level, trend, season by slot, sum of squared one-step errors)``. Seasonality is used once
    ``m > 0`` and more than one season of values exists; it is initialised from the first season (the trend
    from the first two seasons when there are two, else zero): a controller that has seen yesterday should
    use it today.
    """
    x = [float(v) for v in values]
    n = len(x)
    if n == 0:
        return 0.0, 0.0, (), 0.0
    a, b_, g, phi = params.alpha, params.beta, params.gamma, params.phi
    seasonal = m > 0 and n > m
    season = [0.0] * m if seasonal else []
    if seasonal:
        first = x[:m]
        level = sum(first) / m
        trend = (sum(x[m : 2 * m]) / m - level) / m if n >= 2 * m else 0.0
        for j in range(m):
            season[(first_index + j) % m] = first[j] - level
        start = m
    else:
        level, trend, start = x[0], (x[1] - x[0]) if n > 1 else 0.0, 1
    sse = 0.0
    for j in range(start, n):
        slot = (first_index + j) % m if seasonal else 0
        s_old = season[slot] if seasonal else 0.0
        pred = level + phi * trend + s_old
        err = x[j] - pred
        sse += err * err
        new_level = a * (x[j] - s_old) + (1.0 - a) * (level + phi * trend)
        trend = b_ * (new_level - level) + (1.0 - b_) * phi * trend
        level = new_level
        if seasonal:
            season[slot] = g * (x[j] - level) + (1.0 - g) * s_old
    return level, trend, tuple(season), sse


def fit_holt_winters(values: tuple[float, ...], m: int, first_index: int, start: HWParams) -> HWParams:
    """Fit (α, β, γ, φ) by minimising the one-step squared error (L-BFGS-B from ``start``, few iterations)."""
    if len(values) < 4:
        return start
    keep = max(3 * m, 240)  # the recent past is what matters, and it bounds the cost of a fit
    if len(values) > keep:
        first_index += len(values) - keep
        values = values[-keep:]
    arr = np.asarray(values, dtype=float)

    def sse(v: np.ndarray) -> float:
        p = HWParams(float(v[0]), float(v[1]), float(v[2]), float(v[3]))
        return holt_winters_run(arr, p, m, first_index)[3]

    x0 = np.array([start.alpha, start.beta, start.gamma, start.phi])
    bounds = [(0.01, 1.0), (0.0, 0.5), (0.0, 0.9), (0.5, 0.99)]
    res = minimize(sse, x0, method="L-BFGS-B", bounds=bounds, options={"maxiter": 25})
    v = res.x if np.all(np.isfinite(res.x)) else x0
    return HWParams(float(v[0]), float(v[1]), float(v[2]), float(v[3]))


def _hw_predict(state: SeriesState, cfg: ForecastConfig, target_time: float) -> float | None:
    if state.level is None or state.last_bucket is None:
        return None
    k = max(1, math.floor(target_time / cfg.bucket_s) - state.last_bucket)
    phi = state.params.phi
    damp = phi * (1.0 - phi**k) / (1.0 - phi) if phi < 1.0 else float(k)
    seasonal = state.season[(state.last_bucket + k) % len(state.season)] if state.season else 0.0
    return max(0.0, state.level + damp * state.trend + seasonal)


def _close_buckets(state: SeriesState, cfg: ForecastConfig, new_index: int) -> SeriesState:
    """Fold the finished bucket (and fill any gap with it) into the history and the Holt-Winters state."""
    assert state.bucket_index is not None and state.bucket_n > 0
    mean = state.bucket_sum / state.bucket_n
    gap = min(new_index - state.bucket_index, cfg.max_history)
    history = (*state.history, *([mean] * gap))[-cfg.max_history :]
    first_index = state.bucket_index + gap - len(history)
    m = cfg.season_buckets
    since_fit = state.since_fit + gap
    params = state.params
    level, trend, season = state.level, state.trend, state.season
    need_seasonal_init = m > 0 and not season and len(history) > m
    first_fit = not state.fitted and len(history) >= 16
    refit = since_fit >= cfg.refit_every or need_seasonal_init or first_fit
    fitted = state.fitted or refit
    if level is None or refit or gap > 1:
        if refit:
            params = fit_holt_winters(history, m, first_index, params)
            since_fit = 0
        level, trend, season, _ = holt_winters_run(history, params, m, first_index)
    else:
        slot = state.bucket_index % m if season else 0
        s_old = season[slot] if season else 0.0
        a, b_, g, phi = params.alpha, params.beta, params.gamma, params.phi
        new_level = a * (mean - s_old) + (1.0 - a) * (level + phi * trend)
        trend = b_ * (new_level - level) + (1.0 - b_) * phi * trend
        level = new_level
        if season:
            s = list(season)
            s[slot] = g * (mean - level) + (1.0 - g) * s_old
            season = tuple(s)
    return replace(
        state,
        history=history,
        level=level,
        trend=trend,
        season=season,
        params=params,
        since_fit=since_fit,
        fitted=fitted,
        last_bucket=new_index - 1,
        bucket_index=new_index,
        bucket_sum=0.0,
        bucket_n=0,
    )


# ------------------------------------------------------------------------------------------------ update


def _predictions(state: SeriesState, cfg: ForecastConfig, target_time: float) -> tuple[float, ...]:
    last = state.last or 0.0
    ewma = state.ewma if state.ewma is not None else last
    hw = _hw_predict(state, cfg, target_time)
    return (last, ewma, ewma if hw is None else hw)


def update(state: SeriesState, cfg: ForecastConfig, t: float, y: float) -> SeriesState:
    """Fold sample ``y`` (non-negative, finite) taken at ``t`` (seconds) into the series.

    Samples at or before the previous sample's time are ignored (the state is returned unchanged), so a
    repeated observation cannot double-count.
    """
    if not math.isfinite(y) or (state.time is not None and t <= state.time):
        return state
    y = max(0.0, y)
    # 1. score forecasts that have come due
    scale = 1e-6 + 0.02 * (state.ewma if state.ewma is not None else y)
    scores = list(state.scores)
    residuals = [list(r) for r in state.residuals]
    decay = 0.5 ** (1.0 / cfg.error_halflife)
    still: list[tuple[float, tuple[float, ...]]] = []
    for target, preds in state.pending:
        if target > t:
            still.append((target, preds))
            continue
        for i, p in enumerate(preds):
            r = math.log((y + scale) / (p + scale))
            prev = scores[i]
            scores[i] = abs(r) if prev is None else decay * prev + (1.0 - decay) * abs(r)
            residuals[i].append(r)
    # 2. level trackers
    ewma = (
        y
        if state.ewma is None or state.time is None
        else (state.ewma + (1.0 - math.exp(-(t - state.time) / cfg.ewma_tau_s)) * (y - state.ewma))
    )
    new = replace(
        state,
        time=t,
        last=y,
        ewma=ewma,
        scores=tuple(scores),
        residuals=tuple(tuple(r[-cfg.max_residuals :]) for r in residuals),
    )
    # 3. buckets for Holt-Winters
    index = math.floor(t / cfg.bucket_s)
    if new.bucket_index is None:
        new = replace(new, bucket_index=index)
    elif index > new.bucket_index and new.bucket_n > 0:
        new = _close_buckets(new, cfg, index)
    elif index > (new.bucket_index or 0):
        new = replace(new, bucket_index=index)
    new = replace(new, bucket_sum=new.bucket_sum + y, bucket_n=new.bucket_n + 1)
    # 4. record this step's forecasts for scoring at t + h
    target_time = t + cfg.horizon_s
    return replace(new, pending=(*still, (target_time, _predictions(new, cfg, target_time))))


def _quantile(values: tuple[float, ...], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def forecast(state: SeriesState, cfg: ForecastConfig) -> Forecast | None:
    """The forecast at ``state.time + horizon_s``, or None before the first sample."""
    if state.time is None or state.last is None:
        return None
    if cfg.method == "off":
        return Forecast(state.last, state.last, "off", 0.0)
    preds = _predictions(state, cfg, state.time + cfg.horizon_s)
    if cfg.method == "auto":
        scored = [(s, i) for i, s in enumerate(state.scores) if s is not None]
        idx = min(scored)[1] if scored else 1
    else:
        idx = METHODS.index(cfg.method)
    mean = preds[idx]
    res = state.residuals[idx]
    band = _quantile(res, cfg.quantile) if len(res) >= cfg.min_residuals else cfg.default_band
    upper = mean * math.exp(min(cfg.max_band, max(0.0, band)))
    return Forecast(mean, upper, METHODS[idx], cfg.horizon_s)
