"""How much memory one InferenceAutoscaler's controller state holds as it runs, and where it stops growing.

    PYTHONPATH=. python bench/state_size.py [--hours 72] [--interval 15] [--season 24h]

The controller keeps one ``SLOState`` per resource between intervals. Every part of it is bounded by a
window or a count (the demand samples of the rise window, the forecast's bucket history and residuals,
the burst and step memories, the stabilisation records), so it grows from an empty state and then stays
flat; a soak shorter than the longest window sees only the growth. This drives the real ``decide`` for
``--hours`` of simulated operation at ``--interval`` (``bench/decide_speed.py``'s load, and a decode slot
queue for one scrape in twenty, so every memory fills) and prints, as one JSON line per checkpoint: the
operating time, the state's deep size in KiB (every object reachable from it, counted once), its demand
samples, forecast buckets and residuals, and the size for 1,000 resources in MB.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from autoscaler.api.durations import parse_duration
from autoscaler.catalog import load_profile
from autoscaler.core.slo import SLOPolicy, SLOState
from autoscaler.core.types import Observation, Role
from autoscaler.sim.scorecard import build_spec


def deep_size(obj: object) -> int:
    """Bytes of every object reachable from ``obj`` (containers, dataclass fields, slots), each counted once;
    interned singletons (None, bools, enum members) are not counted."""
    seen: set[int] = set()
    total = 0
    stack: list[object] = [obj]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, (bool, Role)) or id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        stack.extend(_children(item))
    return total


def _children(item: object) -> Iterator[Any]:
    if isinstance(item, (str, bytes, int, float)):
        return iter(())
    if isinstance(item, dict):
        return iter([*item.keys(), *item.values()])
    if isinstance(item, (tuple, list, set, frozenset)):
        return iter(item)
    if is_dataclass(item):
        return (getattr(item, f.name) for f in fields(item))
    return iter(())


def _load_decide_speed() -> Any:
    path = Path(__file__).with_name("decide_speed.py")
    spec = importlib.util.spec_from_file_location("decide_speed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _obs(t: float, rng: random.Random, k: int) -> Observation:
    """``bench/decide_speed.py``'s load (an hourly sine with noise), with a decode slot queue one scrape in
    twenty so the asked-demand and burst memories fill too."""
    obs: Observation = _DECIDE_SPEED._obs(t, rng)
    if k % 20:
        return obs
    roles = dict(obs.roles)
    roles[Role.DECODE] = replace(roles[Role.DECODE], queue_depth=200.0)
    return replace(obs, roles=roles)


_DECIDE_SPEED = _load_decide_speed()


def _counts(state: SLOState) -> dict[str, int]:
    series = (state.arrivals, state.prompt_tokens, state.output_tokens)
    return {
        "demand_samples": len(state.recent),
        "forecast_buckets": sum(len(s.history) for s in series),
        "forecast_residuals": sum(len(r) for s in series for r in s.residuals),
        "bursts": len(state.bursts),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=72.0, help="simulated operating time, hours")
    ap.add_argument("--interval", type=float, default=15.0, help="control interval, seconds")
    ap.add_argument("--season", default="24h", help="spec.forecast.season")
    args = ap.parse_args()
    profile = load_profile("llama2-70b/h100/tp4")
    spec = build_spec(profile, season_s=parse_duration(args.season))
    policy = SLOPolicy(profile)
    rng = random.Random(0)
    state = policy.initial_state(spec, 0.0)
    steps = int(args.hours * 3600.0 / args.interval)
    checkpoints = {0, steps}
    hours = 0.25
    while hours * 3600.0 / args.interval < steps:
        checkpoints.add(int(hours * 3600.0 / args.interval))
        hours *= 2
    for k in range(steps + 1):
        t = k * args.interval
        if k in checkpoints:
            size = deep_size(state)
            print(
                json.dumps(
                    {
                        "hours": round(t / 3600.0, 2),
                        "state_kib": round(size / 1024.0, 1),
                        "mb_per_1000_resources": round(size * 1000 / 1e6, 1),
                        **_counts(state),
                    }
                ),
                flush=True,
            )
        if k < steps:
            _, state = policy.decide(spec, _obs(t, rng, k), state, t)


if __name__ == "__main__":
    main()
