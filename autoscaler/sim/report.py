"""Render a :class:`~autoscaler.sim.engine.SimResult`: a terminal summary table and a self-contained HTML report.

The HTML has no external assets: plots are inline SVG generated here (load, replicas per role, TTFT and ITL
at the SLO percentile over time against the SLO — both what the policy observed and the ground truth).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from autoscaler.sim.engine import SimResult

__all__ = ["render_html", "summary_rows"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")


def _fmt_s(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    x = float(x)
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def _fmt_pct(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):.2f} %"


def summary_rows(result: SimResult) -> list[tuple[str, str]]:
    """(label, value) rows of the headline figures, in display order."""
    s = result.summary
    slo = s["slo"]
    rows = [
        ("trace", f"{s['trace']} ({s['requests']:,} requests, {s['duration_s'] / 60:.1f} min)"),
        ("policy", f"{s['policy']} · {s['mode']} · router {s['router']}"),
        ("profile", ", ".join(f"{k}: {v}" for k, v in s["profiles"].items())),
        ("SLO", f"TTFT ≤ {_fmt_s(slo['ttft_s'])}, ITL ≤ {_fmt_s(slo['itl_s'])} (per request)"),
        ("SLO attainment TTFT", _fmt_pct(s["slo_attainment"]["ttft"])),
        ("SLO attainment ITL", _fmt_pct(s["slo_attainment"]["itl"])),
        ("SLO attainment both", _fmt_pct(s["slo_attainment"]["both"])),
        ("TTFT p50 / p95 / p99", " / ".join(_fmt_s(s["ttft_s"][k]) for k in ("p50", "p95", "p99"))),
        ("ITL p50 / p95 / p99", " / ".join(_fmt_s(s["itl_s"][k]) for k in ("p50", "p95", "p99"))),
        ("GPU-hours", f"{s['gpu_hours']['total']:.2f}"),
        ("cost", f"${s['cost_usd']:.2f}"),
        ("scaling actions", str(s["scaling_actions"])),
        ("failed requests", str(s["failed"])),
    ]
    return rows


def _polyline(xs: Sequence[float], ys: Sequence[float | None], sx: Any, sy: Any, color: str,
              dash: str = "") -> str:
    parts: list[str] = []
    seg: list[str] = []
    for x, y in zip(xs, ys, strict=True):
        if y is None or not math.isfinite(y):
            if len(seg) > 1:
                parts.append(" ".join(seg))
            seg = []
            continue
        seg.append(f"{sx(x):.1f},{sy(y):.1f}")
    if len(seg) > 1:
        parts.append(" ".join(seg))
    style = f' stroke-dasharray="{dash}"' if dash else ""
    return "".join(
        f'<polyline fill="none" stroke="{color}" stroke-width="1.5"{style} points="{p}"/>' for p in parts
    )


def _chart(title: str, xs: Sequence[float], series: Sequence[tuple[str, Sequence[float | None], str]],
           unit: str, hline: float | None = None, log: bool = False) -> str:
    w, h, left, right, top, bottom = 900, 260, 60, 150, 28, 32
    vals = [v for _, ys, _ in series for v in ys if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if hline is not None:
        vals.append(hline)
    if not xs or not vals:
        return f"<h3>{html.escape(title)}</h3><p>no data</p>"
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    lo, hi = (min(vals), max(vals)) if log else (0.0, max(vals))
    if log:
        lo, hi = math.log10(lo) - 0.1, math.log10(hi) + 0.1
    hi = hi if hi > lo else lo + 1

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def sy(y: float) -> float:
        v = math.log10(y) if log else y
        return top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           f'font-size="11"><text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" fill="none" '
           f'stroke="#ccc"/>']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        label = 10**v if log else v
        y = top + (1 - i / 4) * (h - top - bottom)
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{label:.3g}{unit}</text>')
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
    for i in range(6):
        x = x0 + (x1 - x0) * i / 5
        out.append(f'<text x="{sx(x):.1f}" y="{h - 12}" text-anchor="middle">{x / 60:.0f} min</text>')
    if hline is not None:
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{sy(hline):.1f}" y2="{sy(hline):.1f}" '
                   f'stroke="#000" stroke-dasharray="6 3"/>')
        out.append(f'<text x="{w - right + 6}" y="{sy(hline) + 4:.1f}">SLO</text>')
    for k, (name, ys, dash) in enumerate(series):
        color = _COLORS[k % len(_COLORS)]
        out.append(_polyline(xs, ys, sx, sy, color, dash))
        out.append(f'<text x="{w - right + 6}" y="{top + 14 * (k + 1)}" fill="{color}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def render_html(result: SimResult) -> str:
    """A self-contained HTML report (inline SVG, no scripts or external files)."""
    ts = result.timeseries
    xs = [float(x) for x in ts["t"] if x is not None]
    s = result.summary
    q = s["slo"]["percentile"]
    roles = [k.split(".", 1)[1] for k in ts if k.startswith("replicas.")]
    charts = [
        _chart("Load (requests/s per control interval)", xs, [("arrivals", ts["arrival_rate"], "")], ""),
        _chart("Replicas per role", xs,
               [(f"{r} asked", ts[f"replicas.{r}"], "") for r in roles]
               + [(f"{r} ready", ts[f"ready.{r}"], "4 2") for r in roles], ""),
        _chart(f"TTFT p{q:g} vs SLO", xs, [("observed (Prometheus)", ts["observed_ttft"], ""),
                                            ("ground truth", ts["true_ttft"], "4 2")], "s",
               hline=s["slo"]["ttft_s"], log=True),
        _chart(f"ITL p{q:g} vs SLO", xs, [("observed, per token", ts["observed_itl"], ""),
                                           ("ground truth, per request", ts["true_itl"], "4 2")], "s",
               hline=s["slo"]["itl_s"], log=True),
        _chart("Cost rate ($/h)", xs, [("cost", ts["cost_per_hour"], "")], ""),
    ]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary_rows(result))
    decisions = "\n".join(html.escape(d) for d in result.decisions if " hold" not in d[:12] or "→" in d)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>inference-autoscaler simulation</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1000px}th{text-align:left;padding-right:2em}"
        "pre{background:#f6f6f6;padding:1em;max-height:20em;overflow:auto}</style></head><body>"
        f"<h1>Simulation: {html.escape(str(s['trace']))} · {html.escape(str(s['policy']))}</h1>"
        f"<table>{rows}</table>{''.join(charts)}"
        f"<h2>Scaling actions</h2><pre>{decisions or 'none'}</pre></body></html>\n"
    )
