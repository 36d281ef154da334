"""``inference-autoscaler simulate``: replay a trace through the twin under a policy and report.

Prints a summary table, optionally writes JSON results (``--json``) and a self-contained HTML report
(``--html``); files are written atomically (temporary file, then rename), so a failed run leaves none.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from autoscaler.api.durations import parse_duration
from autoscaler.catalog import load_profile
from autoscaler.core.types import Role
from autoscaler.errors import InputError
from autoscaler.sim.config import Mode, RoleShape, RouterKind, SimConfig
from autoscaler.sim.core_policies import CorePolicy
from autoscaler.sim.engine import SimResult, simulate
from autoscaler.sim.policies import StaticPolicy, policy_from_string, policy_names
from autoscaler.sim.report import render_html, summary_rows
from autoscaler.sim.traces import Trace, bundled_trace_names, bundled_trace_path, load_trace

__all__ = ["register", "run_simulate", "write_atomic"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` subcommand; its handler is stored with ``set_defaults(handler=...)``."""
    p = subparsers.add_parser(
        "simulate",
        help="replay a traffic trace through the digital twin under a scaling policy",
        description="Replay a trace through a fleet model calibrated on measured GPU data and report SLO "
        "attainment, latency percentiles, GPU-hours and cost.",
    )
    p.add_argument("--trace", default="azure_conv",
                   help="trace file (Azure CSV, Mooncake JSONL, plain CSV, ServeGen envelope) or bundled name "
                   "(default: azure_conv)")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply inter-arrival times (default 1)")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply the arrival rate (default 1)")
    p.add_argument("--start", default=None, help="cut the trace from this offset (duration, e.g. 10m)")
    p.add_argument("--end", default=None, help="cut the trace at this offset (duration, e.g. 40m)")
    p.add_argument("--profile", default="llama2-70b/h100/tp4", help="performance profile name")
    p.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.AGGREGATED.value)
    p.add_argument("--replicas", default=None,
                   help="initial replicas: N, or prefill=N,decode=M (default: 8 aggregated, 2+6 disaggregated)")
    p.add_argument("--max-replicas", type=int, default=64, help="upper bound per role (default 64)")
    p.add_argument("--min-replicas", type=int, default=1, help="lower bound per role (default 1)")
    p.add_argument("--policy", default=None,
                   help="; ".join(policy_names()) + " (default: static at the initial replicas)")
    p.add_argument("--router", choices=[r.value for r in RouterKind], default=RouterKind.LEAST_OUTSTANDING.value)
    p.add_argument("--slo-ttft", default="1s", help="TTFT target per request (default 1s)")
    p.add_argument("--slo-itl", default="100ms", help="ITL target per request (default 100ms)")
    p.add_argument("--percentile", type=float, default=95.0, help="SLO percentile the policy sees (default 95)")
    p.add_argument("--interval", default="15s", help="control interval (default 15s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", default=None, help="write JSON results here")
    p.add_argument("--html", dest="html_out", default=None, help="write an HTML report here")
    p.add_argument("--quiet", action="store_true", help="no table, no progress bar")
    p.set_defaults(handler=run_simulate)


def _duration(flag: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as err:
        raise InputError(str(err), source=flag) from None


def _replicas(text: str | None, mode: Mode, lo: int, hi: int) -> dict[Role, RoleShape]:
    roles = [Role.BOTH] if mode is Mode.AGGREGATED else [Role.PREFILL, Role.DECODE]
    counts: dict[Role, int] = {Role.BOTH: 8, Role.PREFILL: 2, Role.DECODE: 6}
    if text:
        if "=" not in text:
            try:
                n = int(text)
            except ValueError:
                raise InputError(f"expected N or prefill=N,decode=M, got {text!r}", source="--replicas") from None
            counts = dict.fromkeys(roles, n)
        else:
            for item in text.split(","):
                key, _, value = item.partition("=")
                try:
                    role, n = Role(key.strip()), int(value)
                except ValueError:
                    raise InputError(f"expected role=N, got {item!r}", source="--replicas") from None
                if role not in roles:
                    raise InputError(f"role {role.value!r} is not part of {mode.value} mode", source="--replicas")
                counts[role] = n
    shapes: dict[Role, RoleShape] = {}
    for role in roles:
        n = counts[role]
        if not lo <= n <= hi:
            raise InputError(f"{role.value}={n} outside [{lo}, {hi}] (--min-replicas/--max-replicas)",
                             source="--replicas")
        shapes[role] = RoleShape(initial=n, min_replicas=lo, max_replicas=hi)
    return shapes


def _load_trace(args: argparse.Namespace) -> Trace:
    path = Path(args.trace)
    if not path.exists():
        if "/" in args.trace or args.trace.endswith((".csv", ".jsonl")):
            raise InputError(
                f"no such file; or use a bundled trace: {', '.join(bundled_trace_names())}", source=args.trace
            )
        path = bundled_trace_path(args.trace)
    return load_trace(
        path, time_scale=args.time_scale, rate_scale=args.rate_scale,
        start_s=_duration("--start", args.start), end_s=_duration("--end", args.end), seed=args.seed,
    )


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename."""
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"directory {str(target.parent)!r} does not exist", source=str(path))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.t0 = time.monotonic()

    def __call__(self, fraction: float) -> None:
        if not self.enabled or time.monotonic() - self.t0 < 0.5:
            return
        n = int(fraction * 30)
        sys.stderr.write(f"\r[{'#' * n}{'.' * (30 - n)}] {100 * fraction:5.1f} %")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and time.monotonic() - self.t0 >= 0.5:
            sys.stderr.write("\r" + " " * 42 + "\r")


def _print_table(result: SimResult, wall_s: float) -> None:
    rows = summary_rows(result)
    rows.append(("simulated in", f"{wall_s:.2f} s ({result.summary['duration_s'] / max(wall_s, 1e-9):,.0f}× real time)"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def run_simulate(args: argparse.Namespace) -> int:
    """Handler of ``simulate``: returns 0; raises :class:`InputError` on bad input."""
    mode = Mode(args.mode)
    interval = _duration("--interval", args.interval)
    slo_ttft = _duration("--slo-ttft", args.slo_ttft)
    slo_itl = _duration("--slo-itl", args.slo_itl)
    assert interval is not None and slo_ttft is not None and slo_itl is not None
    for flag, value in (("--interval", interval), ("--slo-ttft", slo_ttft), ("--slo-itl", slo_itl)):
        if value <= 0:
            raise InputError("must be > 0", source=flag)
    for flag, x in (("--time-scale", args.time_scale), ("--rate-scale", args.rate_scale)):
        if not x > 0:
            raise InputError(f"must be > 0, got {x}", source=flag)
    roles = _replicas(args.replicas, mode, args.min_replicas, args.max_replicas)
    policy = (
        policy_from_string(args.policy) if args.policy
        else StaticPolicy(per_role={r: s.initial for r, s in roles.items()}, name="static")
    )
    config = SimConfig(
        mode=mode,
        roles=roles,
        slo_ttft_s=slo_ttft, slo_itl_s=slo_itl, slo_percentile=args.percentile,
        control_interval_s=interval, scrape_interval_s=min(15.0, interval),
        rate_window_s=max(60.0, 2 * min(15.0, interval)), router=RouterKind(args.router),
    )
    profile = load_profile(args.profile)
    spec = None
    if isinstance(policy, CorePolicy):
        policy, spec = policy.bind(profile, config)
    trace = _load_trace(args)
    progress = _Progress() if not args.quiet else None
    t0 = time.perf_counter()
    result = simulate(trace, profile, config, policy, spec, seed=args.seed, progress=progress)
    wall = time.perf_counter() - t0
    if progress is not None:
        progress.done()
    if args.json_out:
        write_atomic(args.json_out, result.to_json())
    if args.html_out:
        write_atomic(args.html_out, render_html(result))
    if not args.quiet:
        _print_table(result, wall)
    return 0
