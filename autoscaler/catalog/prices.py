"""GPU prices per GPU-hour, one row per quote with its source and date (``data/gpu_ondemand_prices.csv``).

Prices are context, not truth: the table carries conflicting quotes (AWS H100 before and after its June 2025
cut), reservations and spot prices next to on-demand ones. A profile's default price is the **median of the
on-demand / pay-as-you-go rows for its GPU** (see :func:`default_price`); every caller can override it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from autoscaler.catalog._csvread import read_rows

__all__ = ["PriceRow", "default_price", "gpu_prices"]

DATA_DIR = Path(__file__).resolve().parent / "data"
PRICES_CSV = DATA_DIR / "gpu_ondemand_prices.csv"

_COLUMNS = (
    "cloud",
    "instance",
    "gpu",
    "gpus_per_instance",
    "instance_usd_per_hour",
    "usd_per_gpu_hour",
    "region",
    "pricing_type",
    "source",
    "source_date",
    "confidence",
    "note",
)


@dataclass(frozen=True, slots=True)
class PriceRow:
    """One quoted GPU price.

    Attributes:
        accelerator: GPU as the source names it, e.g. ``"H100 SXM 80GB"``.
        price_per_gpu_hour: USD per GPU-hour.
        provider: cloud or vendor, e.g. ``"AWS"``.
        instance: instance type the quote is for.
        pricing_type: ``"on-demand"``, ``"capacity block reservation"``, ``"spot"``...
        region: region of the quote ('' when not stated).
        source: where the figure comes from.
        date: when the source states it (free text, as the source gives it).
        confidence: ``high`` / ``medium`` / ``low`` as recorded when the table was compiled.
        note: caveats (conflicting figures, reservation terms).
    """

    accelerator: str
    price_per_gpu_hour: float
    provider: str
    instance: str
    pricing_type: str
    region: str
    source: str
    date: str
    confidence: str
    note: str

    @property
    def on_demand(self) -> bool:
        """True for list on-demand / pay-as-you-go prices (not reservations, spot or serverless)."""
        kind = self.pricing_type.lower()
        return kind.startswith("on-demand") or kind.startswith("pay-as-you-go")


@lru_cache(maxsize=4)
def _load(path: Path) -> tuple[PriceRow, ...]:
    rows = []
    for row in read_rows(path, _COLUMNS):
        if not row.text("usd_per_gpu_hour"):
            continue  # a provider with no usable figure (recorded as NOT FOUND in the table)
        rows.append(
            PriceRow(
                accelerator=row.text("gpu"),
                price_per_gpu_hour=row.float("usd_per_gpu_hour", minimum=0.0, allow_equal=False),
                provider=row.text("cloud"),
                instance=row.text("instance"),
                pricing_type=row.text("pricing_type"),
                region=row.text("region"),
                source=row.text("source"),
                date=row.text("source_date"),
                confidence=row.text("confidence"),
                note=row.text("note"),
            )
        )
    return tuple(rows)


def gpu_prices() -> list[PriceRow]:
    """Every priced row of the bundled table, in file order (rows without a figure are left out)."""
    return list(_load(PRICES_CSV))


def default_price(gpu_prefix: str) -> tuple[float, str]:
    """Median on-demand price per GPU-hour (USD) of the rows whose GPU starts with ``gpu_prefix``.

    Returns:
        ``(price, provenance)`` where provenance lists the rows used.

    Raises:
        LookupError: no on-demand row matches (callers turn this into an InputError asking for a price).
    """
    rows = [r for r in _load(PRICES_CSV) if r.on_demand and r.accelerator.startswith(gpu_prefix)]
    if not rows:
        raise LookupError(gpu_prefix)
    price = statistics.median(r.price_per_gpu_hour for r in rows)
    used = "; ".join(
        f"{r.provider} {r.instance} {r.price_per_gpu_hour:g} ({r.source}, {r.date})" for r in rows
    )
    return price, f"median of on-demand rows for {gpu_prefix} in gpu_ondemand_prices.csv: {used}"
