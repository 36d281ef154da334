"""Tick by tick: what the policy got through Prometheus next to what the twin's own SignalStore saw.

``python -m e2e.compare WORKDIR [POOL] [EVERY]`` reads a kept box run (``E2E_KEEP=1``): the controller's
``decisions.jsonl`` (``inference-autoscaler run --record-decisions``) and the fleet's ``result.json`` (the
twin's observation at each of its control instants), and prints, for every ``EVERY``-th decision of ``POOL``
(default ``llama``), the live and the twin observation of each role at the same simulated time, and the
decision. Differences in ``arr`` (arrival rate), ``pt``/``gt`` (prompt/generated tokens per second) or the
latency percentiles point at the live path (queries, windows, pod lists); equal inputs with different
decisions point at the policy or its clock.
"""

from __future__ import annotations

import bisect
import json
import sys
from pathlib import Path
from typing import Any


def _fmt(ro: dict[str, Any]) -> str:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    return (f"n={ro['replicas']}/{ro['ready']}/{ro['starting']} rep={ro['reporting']} ttft={f(ro['ttft'])} "
            f"itl={f(ro['itl'])} arr={f(ro['arrival_rate'])} pt={f(ro['prompt_tokens_rate'])} "
            f"gt={f(ro['generation_tokens_rate'])} q={f(ro['queue_depth'])} run={f(ro['running'])} "
            f"kv={f(ro['kv_utilization'])} {','.join(ro['flags'])}")


def compare(workdir: Path, pool: str = "llama", every: int = 1) -> list[str]:
    """The report's lines (see the module docstring)."""
    res = json.loads((workdir / "result.json").read_text())
    wall0, speed = float(res["wall0"]), float(res["speed"])
    twin = res["pools"][pool]["twin_observations"]
    times = [float(o["sim_t"]) for o in twin]
    out: list[str] = []
    n = 0
    for line in (workdir / "decisions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["pool"] != pool:
            continue
        n += 1
        if n % every:
            continue
        sim_t = (float(rec["now"]) - wall0) * speed
        ref = twin[max(0, bisect.bisect_right(times, sim_t) - 1)] if twin else None
        reason = rec["reasons"][0][:150] if rec["reasons"] else ""
        out.append(f"--- t={sim_t:.0f}s (twin t={ref['sim_t'] if ref else '-'}) desired={rec['desired']} {reason}")
        for role, ro in rec["observation"]["roles"].items():
            out.append(f"  live {role:<8} {_fmt(ro)}")
            if ref is not None and role in ref["roles"]:
                out.append(f"  twin {role:<8} {_fmt(ref['roles'][role])}")
    return out


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m e2e.compare WORKDIR [POOL] [EVERY]")
    try:
        lines = compare(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "llama",
                        int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    except (OSError, KeyError, ValueError) as err:
        sys.exit(f"e2e.compare: {sys.argv[1]}: not a kept box run with decisions.jsonl and result.json ({err})")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
