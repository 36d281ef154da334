"""The fast synchronous engine: replay a trace through the fleet model under a policy.

``simulate`` advances the fleet model to each scrape and control instant; at a scrape it records the
replicas' metrics, at a control instant it builds the :class:`~autoscaler.core.types.Observation` a
controller would see, calls ``policy.decide`` and applies the decision (clamped to the configured bounds).
The run is deterministic: equal inputs and seed give byte-identical :meth:`SimResult.to_json`.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.types import Policy, Role
from autoscaler.errors import InputError
from autoscaler.sim.config import SimConfig
from autoscaler.sim.fleet import _GAP_RES, Fleet, ReplicaState
from autoscaler.sim.signals import SignalStore

__all__ = ["SimResult", "Simulation", "TraceLike", "simulate", "token_gap_percentile"]

FloatArray = npt.NDArray[np.float64]


class TraceLike(Protocol):
    """What the engine reads from a trace (``autoscaler.sim.traces.Trace`` satisfies it)."""

    @property
    def name(self) -> str: ...
    @property
    def arrivals_s(self) -> FloatArray: ...
    @property
    def input_tokens(self) -> npt.NDArray[np.int64]: ...
    @property
    def output_tokens(self) -> npt.NDArray[np.int64]: ...
    @property
    def hash_ids(self) -> Sequence[tuple[int, ...]] | None: ...


@dataclass(slots=True)
class SimResult:
    """Outcome of one simulation. Times in seconds, costs in USD.

    Attributes:
        summary: headline figures (see :meth:`to_dict`), JSON-ready.
        timeseries: per control interval: ``t`` (interval end, s from start), ``arrival_rate`` (req/s that
            arrived in the interval), ``replicas.<role>`` (asked for), ``ready.<role>``, ``observed_ttft``
            and ``observed_itl`` (what the policy saw at the SLO percentile, s; ``None`` when unknown),
            ``true_ttft``/``true_itl`` (SLO percentile of requests whose first token / completion fell in the
            interval, ground truth), ``cost_per_hour``.
        arrival, ttft, itl, e2e: per-request arrays in trace order; ``inf`` marks a failed request, ``nan``
            ITL a single-token request (no gap).
        decisions: per control instant, the policy's reasons as text.
    """

    summary: dict[str, Any]
    timeseries: dict[str, list[float | None]]
    arrival: FloatArray
    ttft: FloatArray
    itl: FloatArray
    e2e: FloatArray
    decisions: list[str] = field(default_factory=list)

    def to_dict(self, *, include_requests: bool = False) -> dict[str, Any]:
        """JSON-ready dict; per-request arrays only with ``include_requests`` (they are large)."""
        out: dict[str, Any] = {"summary": self.summary, "timeseries": self.timeseries}
        if include_requests:
            out["requests"] = {
                name: [_json_float(x) for x in arr.tolist()]
                for name, arr in (
                    ("arrival", self.arrival),
                    ("ttft", self.ttft),
                    ("itl", self.itl),
                    ("e2e", self.e2e),
                )
            }
        return out

    def to_json(self, *, include_requests: bool = False) -> str:
        """Deterministic JSON text (sorted keys; NaN/inf as null)."""
        data = _clean(self.to_dict(include_requests=include_requests))
        return json.dumps(data, sort_keys=True, indent=1) + "\n"


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def token_gap_percentile(gaps: Mapping[int, int], q: float) -> float:
    """Percentile ``q`` (0–100) of inter-token gaps across all tokens, from the fleet's log-binned counts."""
    total = sum(gaps.values())
    if total == 0:
        return math.nan
    rank = q / 100.0 * total
    acc = 0
    for key in sorted(gaps):
        acc += gaps[key]
        if acc >= rank:
            return math.exp((key + 0.5) / _GAP_RES)
    return math.exp((max(gaps) + 0.5) / _GAP_RES)


def _pct(values: FloatArray, q: float) -> float | None:
    """Percentile of per-request values; failed requests (inf) count as worst; NaN ignored."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return None
    x = (
        float(np.percentile(v, q, method="linear"))
        if np.all(np.isfinite(v))
        else float(np.sort(v)[min(v.size - 1, math.ceil(q / 100.0 * v.size) - 1)])
    )
    return x


class Simulation:
    """A steppable run: the engine behind :func:`simulate` and the live exporter.

    Construct it, call :meth:`advance` with increasing times (seconds from the trace's start), then
    :meth:`result`. Scrapes and control steps happen at multiples of their intervals.
    Arguments as for :func:`simulate`.
    """

    def __init__(
        self,
        trace: TraceLike,
        profiles: PerformanceProfile | Mapping[Role, PerformanceProfile],
        config: SimConfig,
        policy: Policy[Any, Any],
        spec: object = None,
        *,
        seed: int = 0,
    ) -> None:
        if isinstance(profiles, Mapping):
            missing = [r.value for r in config.roles if r not in profiles]
            if missing:
                raise InputError(f"no performance profile for role(s) {missing}", source="profiles")
            per_role = {r: profiles[r] for r in config.roles}
        else:
            per_role = {r: profiles for r in config.roles}
        arrivals = np.asarray(trace.arrivals_s, dtype=np.float64)
        n = int(arrivals.size)
        if n and np.any(np.diff(arrivals) < 0):
            raise InputError("trace arrivals must be sorted by time", source=trace.name)
        self.trace = trace
        self.config = config
        self.policy = policy
        self.seed = seed
        self.profiles = per_role
        self.arrivals = arrivals
        self.fleet = Fleet(
            config,
            per_role,
            arrivals,
            np.asarray(trace.input_tokens),
            np.asarray(trace.output_tokens),
            trace.hash_ids,
            seed=seed,
        )
        for role, shape in config.roles.items():
            for _ in range(shape.initial):
                self.fleet.add_replica(role, 0.0, warm=True)
        self.spec = config if spec is None else spec
        self.store = SignalStore(config.rate_window_s, config.slo_percentile)
        self.state = policy.initial_state(self.spec, config.start_time_s)
        self.last_arrival = float(arrivals[-1]) if n else 0.0
        self.horizon = self.last_arrival + config.tail_limit_s
        self.series: dict[str, list[float | None]] = {
            "t": [],
            "arrival_rate": [],
            "observed_ttft": [],
            "observed_itl": [],
            "cost_per_hour": [],
        }
        for role in config.roles:
            self.series[f"replicas.{role.value}"] = []
            self.series[f"ready.{role.value}"] = []
            self.series[f"waiting.{role.value}"] = []
        self.decisions: list[str] = []
        self.actions = 0
        self.scored_actions = 0
        self.finished = False
        self.now = 0.0
        self._k_scrape = 1
        self._k_control = 1
        self._prev_t = 0.0
        self._prev_idx = 0
        self._price = {r: float(p.price_per_gpu_hour) * p.gpus_per_replica for r, p in per_role.items()}

    def advance(self, until: float) -> None:
        """Simulate up to ``until`` (seconds from start), scraping and calling the policy on schedule."""
        config = self.config
        si, ci = config.scrape_interval_s, config.control_interval_s
        fleet = self.fleet
        while not self.finished:
            t_s, t_c = self._k_scrape * si, self._k_control * ci
            t = min(t_s, t_c)
            if t > until:
                fleet.run(until)
                self.now = until
                return
            fleet.run(t)
            self.now = t
            if t_s <= t:
                self.store.scrape(fleet, t)
                self._k_scrape += 1
            if t_c <= t:
                self._k_control += 1
                self._control(t)
            if fleet.idle and t >= self.last_arrival:
                self.finished = True
            elif t > self.horizon:
                fleet.fail_in_flight()
                self.finished = True

    def _control(self, t: float) -> None:
        config, fleet, series = self.config, self.fleet, self.series
        obs = self.store.observe(fleet, t)
        decision, self.state = self.policy.decide(self.spec, obs, self.state, config.start_time_s + t)
        changed = []
        for role, shape in config.roles.items():
            if role not in decision.desired:
                continue
            want = min(shape.max_replicas, max(shape.min_replicas, int(decision.desired[role])))
            if want != fleet.target(role):
                changed.append(f"{role.value} {fleet.target(role)}→{want}")
                fleet.scale_to(role, want, t)
                self.actions += 1
                if t >= config.score_from_s:
                    self.scored_actions += 1
        reason = decision.primary_reason
        self.decisions.append(
            f"{t:.0f}s "
            + ("; ".join(changed) if changed else "hold")
            + (f" [{reason.code.value}: {reason.message}]" if reason else "")
        )
        idx = int(np.searchsorted(self.arrivals, t, side="right"))
        series["t"].append(t)
        series["arrival_rate"].append((idx - self._prev_idx) / (t - self._prev_t))
        self._prev_t, self._prev_idx = t, idx
        itl_role = Role.BOTH if Role.BOTH in config.roles else Role.DECODE
        series["observed_ttft"].append(obs.roles[config.entry_role].ttft)
        series["observed_itl"].append(obs.roles[itl_role].itl)
        cost = 0.0
        for role in config.roles:
            series[f"replicas.{role.value}"].append(float(fleet.target(role)))
            waiting = obs.roles[role].queue_depth if role in obs.roles else None
            series[f"waiting.{role.value}"].append(waiting)
            active = fleet.active(role)
            series[f"ready.{role.value}"].append(
                float(sum(1 for r in active if r.state is ReplicaState.READY))
            )
            cost += self._price[role] * len(active)
        series["cost_per_hour"].append(cost)

    def result(self) -> SimResult:
        """Figures of the run so far (call after the run finished for final results)."""
        end = max(self.fleet.now, self.last_arrival) if self.finished else self.fleet.now
        return _result(self, end, self.fleet.gpu_seconds(end))


def simulate(
    trace: TraceLike,
    profiles: PerformanceProfile | Mapping[Role, PerformanceProfile],
    config: SimConfig,
    policy: Policy[Any, Any],
    spec: object = None,
    *,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """Replay ``trace`` through a fleet under ``policy``; synchronous and deterministic.

    Args:
        trace: arrivals (s from 0, sorted) and token counts.
        profiles: one profile for every role, or one per role.
        config: fleet shape, SLO and cadence.
        policy: called every ``config.control_interval_s`` with the Prometheus-like observation.
        spec: passed unchanged to the policy (``None`` → ``config``).
        seed: seeds the router's tie-breaking (synthetic traces are seeded by their loader).
        progress: called with the fraction of the trace simulated (0–1) about every 1 % of it.
    """
    sim = Simulation(trace, profiles, config, policy, spec, seed=seed)
    step = max(config.control_interval_s, sim.last_arrival / 100.0)
    t = 0.0
    while not sim.finished:
        t += step
        sim.advance(t)
        if progress is not None:
            progress(min(1.0, t / sim.last_arrival) if sim.last_arrival > 0 else 1.0)
    return sim.result()


def _result(sim: Simulation, end: float, gpu_s: Mapping[Role, float]) -> SimResult:
    trace, profiles, config, policy, fleet = sim.trace, sim.profiles, sim.config, sim.policy, sim.fleet
    series = {k: list(v) for k, v in sim.series.items()}
    arrivals, seed, actions, decisions = sim.arrivals, sim.seed, sim.actions, sim.decisions
    q = config.slo_percentile
    ttft, itl, e2e = fleet.ttft, fleet.itl, fleet.e2e
    # interval ground truth: requests whose first token (TTFT) / completion (ITL) fell in each interval
    first = fleet.first_token_t
    done = arrivals + np.where(np.isfinite(e2e), e2e, np.nan)
    edges = np.asarray([0.0, *[float(x) for x in series["t"] if x is not None]])
    true_ttft: list[float | None] = []
    true_itl: list[float | None] = []
    for a, b in itertools.pairwise(edges):
        m = (first > a) & (first <= b)
        true_ttft.append(_pct(ttft[m], q) if m.any() else None)
        m2 = (done > a) & (done <= b)
        true_itl.append(_pct(itl[m2], q) if m2.any() else None)
    series["true_ttft"] = true_ttft
    series["true_itl"] = true_itl
    n = int(ttft.size)
    ok_ttft = ttft <= config.slo_ttft_s
    ok_itl = np.where(np.isnan(itl), True, itl <= config.slo_itl_s)
    hours = {r.value: s / 3600.0 for r, s in gpu_s.items()}
    cost = sum(gpu_s[r] / 3600.0 * float(p.price_per_gpu_hour) for r, p in profiles.items())
    summary: dict[str, Any] = {
        "trace": trace.name,
        "requests": n,
        "failed": int(fleet.failed),
        "duration_s": end,
        "mode": config.mode.value,
        "router": config.router.value,
        "policy": getattr(policy, "name", type(policy).__name__),
        "profiles": {r.value: p.name for r, p in profiles.items()},
        "seed": seed,
        "slo": {"ttft_s": config.slo_ttft_s, "itl_s": config.slo_itl_s, "percentile": q},
        "slo_attainment": {
            "ttft": float(ok_ttft.mean()) if n else None,
            "itl": float(ok_itl.mean()) if n else None,
            "both": float((ok_ttft & ok_itl).mean()) if n else None,
        },
        "ttft_s": {f"p{p}": _pct(ttft, p) for p in (50, 95, 99)},
        "itl_s": {f"p{p}": _pct(itl, p) for p in (50, 95, 99)},
        "itl_token_s": {
            f"p{p}": _json_float(token_gap_percentile(fleet.token_gaps, p)) for p in (50, 95, 99)
        },
        "e2e_s": {f"p{p}": _pct(e2e, p) for p in (50, 95, 99)},
        "gpu_hours": {"total": sum(hours.values()), **hours},
        "cost_usd": cost,
        "scaling_actions": actions,
        "scored": {
            "from_s": config.score_from_s,
            "gpu_hours": sum(fleet.gpu_seconds(end, config.score_from_s).values()) / 3600.0,
            "scaling_actions": sim.scored_actions,
            "duration_s": max(0.0, end - config.score_from_s),
        },
        "replicas_requested": len(fleet.replicas),
        "preemptions": sum(r.preemptions for r in fleet.replicas),
        "prefill_tokens_computed": fleet.prefill_tokens_computed,
        "prefix_hit_tokens": fleet.prefix_hit_tokens,
    }
    return SimResult(
        summary=summary,
        timeseries=series,
        arrival=arrivals.copy(),
        ttft=ttft.copy(),
        itl=itl.copy(),
        e2e=e2e.copy(),
        decisions=list(decisions),
    )
