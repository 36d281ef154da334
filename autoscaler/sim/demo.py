"""``python -m autoscaler.sim.demo``: the controller against HPA (queue) and static on the bundled trace.

Runs 30 minutes of the bundled Azure LLM conversation trace (rate ×4, Llama2-70B TP4 on H100,
disaggregated, SLO TTFT p95 ≤ 1 s and ITL p95 ≤ 100 ms) through the digital twin three times — ``slo`` (this
controller), ``hpa-queue`` (Kubernetes HPA on waiting requests per pod, target 5) and ``static`` (the fleet
the trace's peak needs, by the capacity model) — prints a comparison table and writes an HTML report with one
section per policy. Every run starts from the same warm fleet (what the first lead time needs).
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from pathlib import Path
from typing import Any

from autoscaler.errors import InputError

__all__ = ["main", "run_demo"]

POLICIES = ("slo", "hpa-queue", "static")


def run_demo(minutes: float = 30.0, rate_scale: float = 4.0) -> list[tuple[str, Any]]:
    """Simulate the three policies; returns ``(policy, SimResult)`` pairs."""
    from autoscaler.catalog import load_profile
    from autoscaler.core.types import Role
    from autoscaler.sim import scorecard as sc
    from autoscaler.sim.config import Mode, RoleShape, SimConfig
    from autoscaler.sim.engine import simulate
    from autoscaler.sim.traces import bundled_trace_path

    scenario = sc.Scenario(
        "azure_conv", str(bundled_trace_path("azure_conv")), rate_scale=rate_scale, end_s=minutes * 60.0
    )
    profile = load_profile("llama2-70b/h100/tp4")
    trace = sc._load(scenario, 0)
    spec = sc.build_spec(profile, season_s=scenario.season_s)
    first = sc.OracleStart.first_need(trace, profile, spec)
    out = []
    for name in POLICIES:
        knob = {"slo": 0.5, "hpa-queue": 5.0, "static": 1.0}[name]
        policy = sc.make_policy(sc.GridItem(scenario, name, knob, profile.name), trace, profile, spec)
        roles = {r: RoleShape(initial=first[r], min_replicas=1, max_replicas=200) for r in (Role.PREFILL, Role.DECODE)}
        config = SimConfig(mode=Mode.DISAGGREGATED, roles=roles, slo_ttft_s=1.0, slo_itl_s=0.1, slo_percentile=95)
        out.append((name, simulate(trace, profile, config, policy, spec, seed=0)))
    return out


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{1000 * x:.0f} ms"


def table(results: list[tuple[str, Any]]) -> str:
    """The comparison as a Markdown table."""
    lines = [
        "| policy | SLO attainment | TTFT p95 | ITL p95 | GPU-hours | cost | scaling actions |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results:
        s = r.summary
        att = s["slo_attainment"]["both"]
        lines.append(
            f"| {name} | {'—' if att is None else f'{100 * att:.1f} %'} | {_ms(s['ttft_s']['p95'])} | "
            f"{_ms(s['itl_s']['p95'])} | {s['gpu_hours']['total']:.1f} | ${s['cost_usd']:,.0f} | "
            f"{s['scaling_actions']} |"
        )
    return "\n".join(lines)


def html_report(results: list[tuple[str, Any]]) -> str:
    """One self-contained HTML page: the table, then each run's report."""
    from autoscaler.sim.report import render_html

    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in line.strip("|").split("|")) + "</tr>"
        for line in table(results).splitlines()[2:]
    )
    head = "".join(f"<th>{h}</th>" for h in
                   ("policy", "SLO attainment", "TTFT p95", "ITL p95", "GPU-hours", "cost", "scaling actions"))
    parts = [
        "<!doctype html><meta charset='utf-8'><title>inference-autoscaler demo</title>",
        "<h1>SLO controller vs HPA (queue) vs static — Azure conversation trace</h1>",
        f"<table border=1 cellpadding=4><tr>{head}</tr>{rows}</table>",
    ]
    for name, r in results:
        parts.append(f"<h2>{html.escape(name)}</h2><iframe style='width:100%;height:900px' srcdoc=\"")
        parts.append(html.escape(render_html(r), quote=True))
        parts.append("\"></iframe>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: prints the table, writes ``OUT/demo.html``."""
    p = argparse.ArgumentParser(prog="python -m autoscaler.sim.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output directory (default demo-out)")
    p.add_argument("--minutes", type=float, default=30.0, help="minutes of the trace to replay (default 30)")
    args = p.parse_args(argv)
    try:
        if not args.minutes > 0:
            raise InputError(f"must be > 0, got {args.minutes}", source="--minutes")
        t0 = time.perf_counter()
        results = run_demo(args.minutes)
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "demo.html"
        tmp = path.with_suffix(".html.tmp")
        tmp.write_text(html_report(results))
        tmp.replace(path)
    except (InputError, OSError) as err:
        print(f"demo: {err}", file=sys.stderr)
        return 2
    print(f"Azure conversation trace, {args.minutes:g} min ×4, Llama2-70B TP4 H100, disaggregated, "
          "SLO TTFT p95 ≤ 1 s, ITL p95 ≤ 100 ms\n")
    print(table(results))
    print(f"\nwrote {path} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
