"""Compressed soak: 1,000 InferenceAutoscalers × 2 roles, one controller process, many control ticks.

    PYTHONPATH=. python bench/soak.py [--n 1000] [--interval 3] [--duration 480]

The emulated API server (with its workload simulator) runs in its own process and is populated exactly as
``bench/controller_scale.py`` does. The controller runs in another process with the **real control core**
(``ProfilePolicy``, the same object ``inference-autoscaler run`` uses) and a metrics source whose load moves
every tick (a slow sine per resource, phase-shifted, so forecasts, PID state, stabilisation windows, scale
actions, status writes and Events all churn). Time is compressed by running ``--interval`` seconds per tick
instead of the default 15 s: every resource is reconciled once per tick, so ``ticks × 15 s`` is the operating
time the run stands for (reported as ``equivalent_minutes``).

The driver samples the controller's RSS (``/proc/<pid>/status`` VmRSS) every 5 s and prints, as one JSON
line: RSS after the cold tick, at the end, the maximum, the least-squares slope over the second half (MB per
equivalent hour), reconciles, errors and scale actions.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _scale_bench() -> Any:
    spec = importlib.util.spec_from_file_location("controller_scale", ROOT / "bench" / "controller_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _worker(kubeconfig: str, duration: float) -> dict[str, Any]:
    from autoscaler.adapters.cluster import KubeCluster
    from autoscaler.adapters.kube import KubeTransport, new_api_client
    from autoscaler.controller.command import ProfilePolicy
    from autoscaler.controller.manager import Controller
    from autoscaler.core.types import Observation, RoleObservation
    from autoscaler.ports import PoolQuery
    from autoscaler.settings import ControllerSettings

    class MovingLoad:
        """Per resource: arrival rate 2..12 req/s on a sine with a 40-tick period and its own phase."""

        def __init__(self) -> None:
            self.calls = 0
            self.t0 = time.time()

        async def observe(self, queries: Sequence[PoolQuery], now: float) -> Mapping[str, Observation]:
            self.calls += 1
            out = {}
            for q in queries:
                phase = (zlib.crc32(q.key.encode()) % 1000) / 1000 * 2 * math.pi
                rate = 7.0 + 5.0 * math.sin(2 * math.pi * (now - self.t0) / (40 * 15.0) + phase)
                out[q.key] = Observation(
                    time=now,
                    roles={
                        r: RoleObservation(
                            replicas=0, ready=0, ttft=0.3 + 0.05 * rate, itl=0.03 + 0.003 * rate,
                            queue_depth=rate, running=4 * rate, kv_utilization=min(0.95, 0.05 * rate),
                            arrival_rate=rate, prompt_tokens_rate=800 * rate, generation_tokens_rate=150 * rate,
                            reporting=None,
                        )
                        for r in q.pods_by_role
                    },
                )
            return out

    settings = ControllerSettings(kubeconfig=kubeconfig, leader_elect=False, health_port=-1, log_format="json")
    transport = KubeTransport(await new_api_client(kubeconfig), timeout_s=60.0)
    load = MovingLoad()
    controller = Controller(settings, KubeCluster(transport), ProfilePolicy(), lambda spec: ("soak", load), clock=None)
    await controller.start()
    print(json.dumps({"event": "started"}), flush=True)
    await asyncio.sleep(duration)
    stats = controller.stats
    result = {
        "reconciles": stats.reconciles,
        "errors": stats.errors,
        "scale_actions": controller.reconciler.scale_actions,
        "metrics_calls": load.calls,
        "p50_reconcile_ms": 1000 * statistics.median(stats.latencies[-10000:]) if stats.latencies else None,
    }
    await controller.stop()
    await transport.close()
    return result


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="InferenceAutoscalers (× 2 roles)")
    parser.add_argument("--interval", type=float, default=3.0, help="control interval, seconds (compressed)")
    parser.add_argument("--duration", type=float, default=480.0, help="seconds of controller run time")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = asyncio.run(_worker(args.kubeconfig, args.duration))
        print(json.dumps(result), flush=True)
        return 0

    bench = _scale_bench()
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = os.path.join(tmp, "kubeconfig")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.kubeemu", "--kubeconfig", kubeconfig, "--simulate-workloads",
             "--bookmark-interval", "30"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env,
        )
        worker: subprocess.Popen[str] | None = None
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if "listening on" not in line:
                raise RuntimeError(f"emulator did not start: {line!r}")
            url = line.rsplit(" ", 1)[1].strip()
            asyncio.run(bench._populate(url, args.n, args.interval))
            time.sleep(2.0)
            # The worker's stdout (its JSON logs, then the result) goes to a file: a pipe nobody drains
            # would fill up and block the controller on its next log line.
            out_path = Path(tmp) / "worker.out"
            with out_path.open("w") as sink:
                worker = subprocess.Popen(
                    [sys.executable, __file__, "--worker", "--kubeconfig", kubeconfig,
                     "--duration", str(args.duration)],
                    cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, text=True, env=env,
                )
            while worker.poll() is None and '"event": "started"' not in out_path.read_text():
                time.sleep(0.2)  # caches synced
            t0 = time.monotonic()
            samples: list[tuple[float, float]] = []
            while worker.poll() is None:
                try:
                    samples.append((time.monotonic() - t0, _rss_mb(worker.pid)))
                except (FileNotFoundError, ProcessLookupError):
                    break
                time.sleep(5.0)
            worker.wait()
            out = out_path.read_text().strip().splitlines()
            result: dict[str, Any] = json.loads(out[-1])
        finally:
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=30)
            server.terminate()
            server.wait(timeout=30)
    samples = [s for s in samples if not math.isnan(s[1])]
    # "start" = after the cold tick (every resource reconciled and written once): the first sample at least
    # 20 % into the run; growth is judged on the second half.
    warm = [s for s in samples if s[0] >= 0.2 * args.duration] or samples
    half = [s for s in samples if s[0] >= 0.5 * args.duration] or samples
    xs, ys = [s[0] for s in half], [s[1] for s in half]
    slope = 0.0
    if len(xs) >= 2:
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0
    ticks = result["reconciles"] / args.n
    report = {
        "n": args.n,
        "interval_s": args.interval,
        "run_s": args.duration,
        "ticks_per_resource": round(ticks, 1),
        "equivalent_minutes_at_15s": round(ticks * 15 / 60, 1),
        "rss_after_cold_tick_mb": round(warm[0][1], 1),
        "rss_end_mb": round(samples[-1][1], 1),
        "rss_max_mb": round(max(y for _, y in samples), 1),
        "rss_slope_second_half_mb_per_equiv_hour": round(slope * args.interval / 15 * 3600, 2),
        **result,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
