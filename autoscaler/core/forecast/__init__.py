"""Demand forecasting over the provisioning lead time: last value, EWMA, Holt-Winters, chosen online.

Everything is pure: a :class:`SeriesState` goes in with one sample and a new one comes out. The package
forecasts one non-negative series (requests/s, prompt tokens/s or output tokens/s); the controller keeps
one state per signal.
"""

from autoscaler.core.forecast.series import (
    METHODS,
    Forecast,
    ForecastConfig,
    HWParams,
    SeriesState,
    fit_holt_winters,
    forecast,
    holt_winters_run,
    initial_series,
    update,
)

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
