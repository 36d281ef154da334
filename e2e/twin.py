"""The same segment, spec and policy on the digital twin alone: the reference the live loop is held to.

The cluster in a box runs the real controller against the twin through Prometheus; this runs the twin with the
policy called in-process (``autoscaler.sim.engine.simulate``) on the same trace segment, the same
InferenceAutoscaler spec (its loop durations multiplied back to simulated seconds, exactly as
``inference-autoscaler run --time-scale`` hands them to the policy) and the same fleet shape. What is left
between the two figures is what the live path adds: Prometheus scrapes and ``rate()`` windows, the API server,
cold starts of Pods, actuation one interval later.
"""

from __future__ import annotations

import time
from typing import Any

from autoscaler.api.v1alpha1 import parse_spec
from autoscaler.catalog import load_profile
from autoscaler.controller.command import ProfilePolicy, TimeScaledPolicy
from autoscaler.core.types import Role
from autoscaler.sim.config import Mode, RoleShape, SimConfig
from autoscaler.sim.engine import simulate
from autoscaler.sim.traces import bundled_trace_path, load_trace
from e2e.harness import Scenario


def _config(sc: Scenario) -> SimConfig:
    """The box's fleet shape, SLO, control interval, scrape interval and rate window, in simulated seconds."""
    return SimConfig(
        mode=Mode.DISAGGREGATED,
        roles={r: RoleShape(initial=sc.initial, min_replicas=1, max_replicas=sc.max_replicas)
               for r in (Role.PREFILL, Role.DECODE)},
        slo_ttft_s=sc.slo_ttft_s, slo_itl_s=sc.slo_itl_s, slo_percentile=sc.percentile,
        control_interval_s=sc.control_interval_s, scrape_interval_s=sc.scrape_interval_s,
        rate_window_s=sc.window_s,
    )


def twin_reference(sc: Scenario, actuation: str = "Direct") -> dict[str, Any]:
    """Attainment, GPU-hours and replica changes of ``sc``'s segment under the controller's policy on the twin.

    Returns:
        ``{"attainment": fraction, "gpu_hours": float, "scale_log": [(sim_t, "prefill 2→3"), ...],
        "wall_s": seconds this took}``.
    """
    t0 = time.monotonic()
    pool = next(p for p, a in sc.pools if a == actuation)
    raw = next(o for o in sc.manifests("http://unused") if o["kind"] == "InferenceAutoscaler"
               and o["metadata"]["name"] == pool)
    wall_spec = parse_spec(raw["spec"], source="e2e scenario")
    policy = TimeScaledPolicy(ProfilePolicy(), sc.speed, 0.0)
    spec = policy._spec(wall_spec)  # the spec the policy sees in the box: durations in simulated seconds
    trace = load_trace(bundled_trace_path(sc.trace), start_s=sc.start_s, end_s=sc.end_s, rate_scale=sc.rate_scale)
    res = simulate(trace, load_profile(sc.profile), _config(sc), policy.inner, spec)
    log = [d for d in res.decisions if "→" in d.split(" [", 1)[0]]
    ts = res.timeseries
    breaks = [t for t, a, b in zip(ts["t"], ts["true_ttft"], ts["true_itl"], strict=True)
              if (a is not None and a > sc.slo_ttft_s) or (b is not None and b > sc.slo_itl_s)]
    return {
        "slo_breaks": breaks,
        "attainment": float(res.summary["slo_attainment"]["both"]),
        "gpu_hours": float(res.summary["gpu_hours"]["total"]),
        "scale_log": log,
        "wall_s": time.monotonic() - t0,
    }


def per_minute(t: list[float], values: list[float]) -> list[float]:
    """Mean of ``values`` over each simulated minute of ``t`` (seconds)."""
    out: dict[int, list[float]] = {}
    for tt, v in zip(t, values, strict=True):
        out.setdefault(int(tt // 60), []).append(v)
    return [sum(vs) / len(vs) for _, vs in sorted(out.items())]


def hpa_queue_reference(sc: Scenario, metric_delay_s: float | None = None) -> dict[str, Any]:
    """The scorecard's ``hpa-queue`` baseline (HPAPolicy on waiting requests, target 5 per replica, the HPA's
    default behaviour and 15 s sync) on ``sc``'s segment and fleet shape, on the twin alone. The metric is
    ``metric_delay_s`` old when the HPA reads it (simulated seconds; default one control interval, as through
    the controller's external metrics API in the box; 0 reads the latest scrape, as the scorecard does).

    Returns:
        ``{"attainment", "gpu_hours", "per_minute": {"prefill": [...], "decode": [...]}, "wall_s"}``.
    """
    from autoscaler.core.baselines.hpa import HPAPolicy

    t0 = time.monotonic()
    pool = sc.pools[0][0]
    raw = next(o for o in sc.manifests("http://unused") if o["kind"] == "InferenceAutoscaler"
               and o["metadata"]["name"] == pool)
    spec = TimeScaledPolicy(ProfilePolicy(), sc.speed, 0.0)._spec(parse_spec(raw["spec"], source="e2e scenario"))
    trace = load_trace(bundled_trace_path(sc.trace), start_s=sc.start_s, end_s=sc.end_s, rate_scale=sc.rate_scale)
    delay = sc.control_interval_s if metric_delay_s is None else metric_delay_s
    res = simulate(trace, load_profile(sc.profile), _config(sc), HPAPolicy("queue", 5.0, metric_delay_s=delay), spec)
    ts = res.timeseries
    return {
        "attainment": float(res.summary["slo_attainment"]["both"]),
        "gpu_hours": float(res.summary["gpu_hours"]["total"]),
        "per_minute": {role: per_minute(ts["t"], ts[f"replicas.{role}"]) for role in ("prefill", "decode")},
        "wall_s": time.monotonic() - t0,
    }


if __name__ == "__main__":
    ref = twin_reference(Scenario())
    print(f"twin alone: attainment {100 * ref['attainment']:.2f} %, GPU-hours {ref['gpu_hours']:.2f} "
          f"({ref['wall_s']:.1f} s); SLO-breaking intervals at {ref['slo_breaks']}")
    for line in ref["scale_log"]:
        print("  ", line)
