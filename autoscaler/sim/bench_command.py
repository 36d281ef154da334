"""``inference-autoscaler bench``: the scorecard from the command line (see :mod:`autoscaler.sim.scorecard`)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

from autoscaler.errors import InputError
from autoscaler.sim.progress import Progress

__all__ = ["register"]

DEFAULT_POLICIES = "slo,slo-noforecast,static,hpa-queue,hpa-kv,keda,llm-d,dynamo-planner,kpa,oracle"


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n such as 0/4, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected 0 <= i < n, got {text!r}")
    return i, n


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``bench`` subcommand; its handler returns the exit code."""
    p = subparsers.add_parser(
        "bench",
        help="run the scorecard: policies × traces × knob sweeps on the digital twin",
        description="Sweep each policy's main knob on each trace and report GPU-hours at 99 %/95 % SLO "
        "attainment against the oracle (Markdown, JSON, SVG).",
    )
    p.add_argument(
        "--trace",
        action="append",
        default=None,
        metavar="NAME|PATH",
        help="bundled trace name or trace file (repeatable); default: azure_conv, azure_code, "
        "one ServeGen day",
    )
    p.add_argument("--rate-scale", type=float, default=None, help="rate scale for --trace files (default 1)")
    p.add_argument("--time-scale", type=float, default=None, help="time scale for --trace files (default 1)")
    p.add_argument("--start", type=float, default=None, help="cut: first source second to keep")
    p.add_argument("--end", type=float, default=None, help="cut: first source second not to keep")
    p.add_argument("--season", type=float, default=86400.0, help="seasonal period for --trace files, s")
    p.add_argument("--ttft", type=float, default=None, help="TTFT p95 target, s (default: the scenario's; 1 for --trace)")
    p.add_argument("--itl", type=float, default=None, help="ITL p95 target, s (default: the scenario's; 0.1)")
    p.add_argument(
        "--profile", default="llama2-70b/h100/tp4", help="performance profile (default %(default)s)"
    )
    p.add_argument("--policies", default=DEFAULT_POLICIES, help="comma-separated (default: all)")
    p.add_argument("--quick", action="store_true", help="small grid on 15 minutes of Azure conv (CI/demo)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N", help="run every N-th item from I")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="output directory (default bench-out)")
    p.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="do not simulate: merge shard JSON files and write the report",
    )
    p.add_argument("--seed", type=int, default=0, help="first seed (router tie-breaking, synthetic traces)")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="run every point with this many seeds from --seed and average them per knob (default 1)",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from autoscaler.sim import scorecard as sc
    from autoscaler.sim.grid import run_grid
    from autoscaler.sim.peers import unavailable_policies

    skipped: dict[str, str] = {}
    try:
        if args.merge:
            points = sc.merge_points(args.merge)
            files = sc.write_report(points, args.out, meta=sc.merge_meta(args.merge))
        else:
            if args.jobs < 1:
                raise InputError("must be >= 1", source="--jobs")
            if args.trace:
                from autoscaler.sim.traces import bundled_trace_names, bundled_trace_path

                scenarios = []
                for t in args.trace:
                    path = str(bundled_trace_path(t)) if t in bundled_trace_names() else t
                    if not Path(path).is_file():
                        raise InputError("no such trace file or bundled trace name", source=t)
                    scenarios.append(
                        sc.Scenario(
                            Path(t).stem,
                            path,
                            args.rate_scale or 1.0,
                            args.time_scale or 1.0,
                            args.start,
                            args.end,
                            args.season,
                        )
                    )
            else:
                scenarios = sc.default_scenarios(args.quick)
            for name, v in (("--ttft", args.ttft), ("--itl", args.itl)):
                if v is not None and not (v > 0 and math.isfinite(v)):
                    raise InputError(f"expected a positive number of seconds, got {v}", source=name)
            if args.ttft is not None or args.itl is not None:
                scenarios = [
                    dataclasses.replace(s, ttft_s=args.ttft or s.ttft_s, itl_s=args.itl or s.itl_s)
                    for s in scenarios
                ]
            policies = [x.strip() for x in args.policies.split(",") if x.strip()]
            if args.quick and args.policies == DEFAULT_POLICIES:
                policies = list(sc.QUICK_SWEEPS)
            skipped = unavailable_policies(policies)
            for pol, why in skipped.items():
                print(f"inference-autoscaler bench: skipping {pol}: {why}", file=sys.stderr)
            policies = [p for p in policies if p not in skipped]
            items = sc.grid(
                scenarios, policies, args.profile, quick=args.quick, seed=args.seed, seeds=args.seeds
            )
            i, n = args.shard
            mine = len(range(i, len(items), n))
            print(f"bench: {mine} simulations (scenarios: {len(scenarios)}, policies: {len(policies)}, with their "
                  f"knobs and seeds) on {args.jobs} worker process(es)", file=sys.stderr, flush=True)
            points = run_grid(items, jobs=args.jobs, shard=args.shard, progress=Progress(mine))
            stem = "scorecard" if n == 1 else f"scorecard-{i}-of-{n}"
            files = sc.write_report(
                points,
                args.out,
                stem=stem,
                meta={
                    "profile": args.profile,
                    "policies": policies,
                    "quick": args.quick,
                    "shard": f"{i}/{n}",
                    "scenarios": [s.__repr__() for s in scenarios],
                    "skipped": skipped,
                },
            )
    except InputError as err:
        print(f"inference-autoscaler bench: {err}", file=sys.stderr)
        return 2
    print(files["md"].read_text())
    for pol, why in skipped.items():
        print(f"note: {pol} was not run: {why}")
    print(f"wrote {', '.join(str(f) for f in files.values())}")
    return 0
