"""Bundled measured data: performance profiles, KV sizes, cold starts and GPU prices, with provenance.

Sits below the controller and the simulator (both read it) and above the pure core (which receives the
loaded :class:`autoscaler.core.profile.PerformanceProfile` objects and never reads files).

Public API::

    load_profile(name, *, price_per_gpu_hour=None, cold_start_s=None, kv_link="inter-node") -> MeasuredProfile
    load_profile_csv(path, *, name=None, units="splitwise", ...) -> MeasuredProfile
    profile_names() -> list[str]
    gpu_prices() -> list[PriceRow]
    leave_one_out(profile) -> list[LooPoint]

Data files and their licences: ``autoscaler/catalog/data/README.md``; method: ``docs/simulator-data.md``.
"""

from autoscaler.catalog.prices import PriceRow, gpu_prices
from autoscaler.catalog.profiles import (
    GPU_MEMORY_UTILIZATION,
    KV_LINKS,
    LooPoint,
    MeasuredProfile,
    leave_one_out,
    load_profile,
    load_profile_csv,
    profile_names,
)

__all__ = [
    "GPU_MEMORY_UTILIZATION",
    "KV_LINKS",
    "LooPoint",
    "MeasuredProfile",
    "PriceRow",
    "gpu_prices",
    "leave_one_out",
    "load_profile",
    "load_profile_csv",
    "profile_names",
]
