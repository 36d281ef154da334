"""Leave-one-out interpolation error of every bundled performance profile.

For each profile and each of its three measured curves (prefill vs batch tokens, decode step vs batch size,
decode step vs context), every kept measured point is left out in turn, the curve is rebuilt without it and
evaluated there. Interior points measure the interpolation error; the two end points measure the
extrapolation rule (linear continuation of the two nearest points; holding the first value for decode below
the smallest batch/context). Prints a Markdown table (copied into docs/simulator-data.md).

Run: PYTHONPATH=. python bench/profile_loo.py
"""

from __future__ import annotations

import statistics

from autoscaler.catalog import leave_one_out, load_profile, profile_names


def main() -> None:
    print(
        "| profile | curve | points | interpolation: median abs err | max abs err | "
        "extrapolation (end points): max abs err |"
    )
    print("|---|---|---|---|---|---|")
    all_interior: list[float] = []
    for name in profile_names():
        points = leave_one_out(load_profile(name))
        for curve in ("prefill", "decode_batch", "decode_context"):
            sel = [p for p in points if p.curve == curve]
            inner = [abs(p.error) for p in sel if not p.extrapolated]
            ends = [abs(p.error) for p in sel if p.extrapolated]
            all_interior += inner
            print(
                f"| {name} | {curve} | {len(sel)} | {statistics.median(inner):.1%} | {max(inner):.1%} | "
                f"{max(ends):.1%} |"
            )
    print()
    print(
        f"all interior points: n={len(all_interior)}, "
        f"median abs error {statistics.median(all_interior):.1%}, "
        f"90th percentile {sorted(all_interior)[int(0.9 * len(all_interior))]:.1%}, "
        f"max {max(all_interior):.1%}"
    )


if __name__ == "__main__":
    main()
