"""``dynamo-planner``: NVIDIA Dynamo's production SLA planner (PyPI ``ai-dynamo``) as a scorecard policy.

The planner runs unmodified in a worker process of the peers environment (:mod:`.dynamo_worker`), through its
offline-replay hook ``dynamo.planner.offline.replay_adapter.create_replay_planner_adapter``: its virtual clock
starts at the policy's first call, and each of our control steps replays the planner's ticks that fell due
since the last one, with the step's traffic. What it is given:

- ``optimization_target="sla"`` (its default, "throughput", is the load-based mode), disaggregated, its own
  defaults otherwise: 180 s throughput interval, ARIMA load predictor, at most 8 replicas changed per step;
- its performance model from our profile, as the profiler data its regressions are fitted to, on the grid its
  own replay bootstrap uses (``dynamo.replay.planner``): prefill TTFT of one request at 100 … 8,192 prompt tokens,
  decode ITL at batch 1 … ``max_batch_size`` and contexts of 500, 2,000, 4,000 and 8,000 tokens within the KV cache;
- each role's ``WorkerCapabilities`` (GPUs, batch and KV limits) from the profile;
- the GPU budget every other policy has in the scorecard: the spec's ``maxReplicas × gpusPerReplica`` summed over
  the roles (1,600 GPUs with the scorecard's 200 replicas per role of a 4-GPU profile), not its default of 8;
- the SLA targets: the scenario's TTFT and ITL targets × the knob (default 1.0). The planner sizes on mean
  latencies, the scorecard scores p95, so operators tighten these to buy attainment: that is the swept knob.

What it sees each step (our Prometheus-like observation): the offered requests — Dynamo's live planner counts
requests *started* at its frontend, "so throughput planning sees offered load, not only completed responses"
(``monitoring/traffic_metrics.py``), and its replay reports offered load too; the engines' counters only count
prefills done, so offered = prefills done + the growth of the prefill backlog (waiting + running) over the step —,
mean prompt and output lengths (token rates / request rate), ready and starting replicas per role. No prefix-hit rate (the twin's observation
has none, so it is reported as 0: prefill is sized on the whole prompt) and no per-worker forward-pass metrics
(its live re-fitting of the performance model is therefore idle; the profile's fit stays).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.types import Decision, Observation, Reason, ReasonCode, Role
from autoscaler.sim.peers.env import PeerWorker, shared_worker

__all__ = ["DynamoPlannerPeer", "PeerState", "planner_inputs"]

WORKER = Path(__file__).with_name("dynamo_worker.py")
#: the largest prefill the FPM grid covers (vLLM's chunked-prefill budget; our profiles are measured to it)
MAX_BATCHED_TOKENS = 8192
#: decode contexts of Dynamo's own bootstrap grid, tokens
DECODE_CONTEXTS = (500, 2000, 4000, 8000)
GRANULARITY = 8


@dataclass(slots=True)
class PeerState:
    """The replay's bookkeeping between control steps (the planner's own state lives in the worker).

    Attributes:
        t0: our time at the planner's virtual zero, Unix seconds.
        last: our time of the previous step, Unix seconds.
        next_tick: the planner's next tick, virtual seconds (None: it asked for no more).
        ordinal: ticks sent.
        desired: the planner's latest targets per role.
        reason: what it said on its latest tick.
        backlog: requests inside the prefill role at ``last`` (None: unknown).
    """

    t0: float
    last: float
    next_tick: float | None
    ordinal: int = 0
    desired: dict[Role, int] | None = None
    reason: str = ""
    backlog: float | None = None


def planner_inputs(
    profile: PerformanceProfile, spec: InferenceAutoscalerSpec, sla_scale: float = 1.0, predictor: str = "arima"
) -> dict[str, Any]:
    """The worker's ``init`` request: planner config, capabilities and profiler FPMs from ``profile``;
    ``predictor`` is its ``load_predictor`` (constant, arima — its default —, prophet or kalman)."""
    gpus = profile.gpus_per_replica
    budget = sum(rs.max_replicas * (rs.gpus_per_replica or gpus) for _, rs in spec.roles.items())
    mins = {Role(n): rs.min_replicas for n, rs in spec.roles.items()}
    config = {
        "mode": "disagg",
        "optimization_target": "sla",
        "load_predictor": predictor,
        "environment": "virtual",
        "backend": "vllm",
        "ttft_ms": spec.slo.ttft.target_s * 1000.0 * sla_scale,
        "itl_ms": spec.slo.itl.target_s * 1000.0 * sla_scale,
        "max_gpu_budget": budget,
        "prefill_engine_num_gpu": gpus,
        "decode_engine_num_gpu": gpus,
        "prefill_min_endpoint": max(1, mins.get(Role.PREFILL, 1)),
        "decode_min_endpoint": max(1, mins.get(Role.DECODE, 1)),
        "advisory": True,  # as its replay bootstrap sets: decisions are returned, the replay applies them
        # I/O the replay does not need: no HTTP ports, no HTML reports
        "control_api_port": 0,
        "live_dashboard_port": 0,
        "report_interval_hours": None,
        # its wall-clock guard on one tick (30 s) measures this machine, not the planner: on a loaded 2-core box
        # its first ARIMA fit took 33 s, and the timed-out tick left it without decisions for the rest of the run
        "scheduling": {"tick_max_duration_seconds": 3600.0},
    }
    caps = {
        "num_gpu": gpus,
        "max_num_batched_tokens": MAX_BATCHED_TOKENS,
        "max_num_seqs": profile.max_batch_size,
        "max_kv_tokens": profile.kv_capacity_tokens,
    }
    return {
        "op": "init",
        "config": config,
        "capabilities": {"prefill": dict(caps), "decode": dict(caps)},
        "prefill_fpms": prefill_fpms(profile),
        "decode_fpms": decode_fpms(profile),
    }


def prefill_fpms(profile: PerformanceProfile) -> list[list[float]]:
    """``[prompt tokens, seconds]`` of one prefill each, 100 … :data:`MAX_BATCHED_TOKENS` in 8 steps."""
    step = max(1, (MAX_BATCHED_TOKENS - 100) // GRANULARITY)
    return [[float(n), profile.prefill_time_s(n)] for n in range(100, MAX_BATCHED_TOKENS + 1, step)]


def decode_fpms(profile: PerformanceProfile) -> list[list[float]]:
    """``[batch, KV tokens, seconds per step]`` at each of :data:`DECODE_CONTEXTS`, batch 1 … max in 8 steps,
    while the batch's KV fits."""
    out: list[list[float]] = []
    step = max(1, profile.max_batch_size // GRANULARITY)
    for ctx in DECODE_CONTEXTS:
        for bs in range(1, profile.max_batch_size + 1, step):
            if bs * ctx > profile.kv_capacity_tokens:
                break
            out.append([float(bs), float(bs * ctx), profile.decode_step_s(bs, ctx)])
    return out


def backlog(observation: Observation) -> float | None:
    """Requests inside the prefill role (waiting + running), or None when unknown."""
    front = observation.roles.get(Role.PREFILL)
    if front is None or front.queue_depth is None or front.running is None:
        return None
    return front.queue_depth + front.running


def _traffic(observation: Observation, duration: float, grown: float) -> dict[str, Any] | None:
    """The step's traffic window as the replay loop reports it (``grown``: the prefill backlog's growth over it,
    requests), or None when the rates are unknown."""
    front, back = observation.roles.get(Role.PREFILL), observation.roles.get(Role.DECODE)
    if not observation.source_ok or front is None or back is None or duration <= 0:
        return None
    f, b = front.sanitized(), back.sanitized()
    rate, prompt, out = f.arrival_rate, f.prompt_tokens_rate, b.generation_tokens_rate
    if rate is None or prompt is None or out is None:
        return None
    n = max(0.0, rate * duration + grown)  # offered = prefills done + backlog growth
    window: dict[str, Any] = {
        "duration_s": duration,
        "num_req": n,
        "avg_isl": prompt / rate if rate > 0 else 0.0,
        "avg_osl": out / rate if rate > 0 else 0.0,
        "shape_count": n,
        # the twin's observation has no prefix-hit rate: 0 with no samples, as the replay loop reports a window
        # without admissions (its window merge turns a missing rate into 0 anyway); the planner then sizes
        # prefill on the full prompt, which can only favour it
        "hit_rate_count": 0.0,
        "avg_kv_hit_rate": 0.0,
    }
    # our signals are the SLO percentile, not means; the planner only records these in its diagnostics
    if f.ttft is not None:
        window["avg_ttft_ms"], window["ttft_count"] = f.ttft * 1000.0, n
    if b.itl is not None:
        window["avg_itl_ms"], window["itl_count"] = b.itl * 1000.0, n
    return window


def _counts(observation: Observation, role: Role) -> tuple[int, int]:
    obs = observation.roles.get(role)
    return (0, 0) if obs is None else (obs.ready, obs.starting)


class DynamoPlannerPeer:
    """The real Dynamo planner behind our ``Policy`` protocol.

    :meth:`initial_state` starts a fresh planner in this process's worker (started on first use, reused by
    later runs: the worker replaces its planner on each ``init``); :meth:`close` stops the worker.
    """

    name = "dynamo-planner"

    def __init__(self, profile: PerformanceProfile, sla_scale: float = 1.0, predictor: str = "arima") -> None:
        if not (sla_scale > 0 and math.isfinite(sla_scale)):
            raise ValueError(f"sla_scale must be a positive number, got {sla_scale!r}")
        self.profile = profile
        self.sla_scale = sla_scale
        self.predictor = predictor
        self.version = ""
        self._worker: PeerWorker | None = None

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> PeerState:
        """Start the worker and the planner (:class:`PeersUnavailable` naming ``make peers`` without it)."""
        self._worker = shared_worker(WORKER)
        reply = self._worker.request(planner_inputs(self.profile, spec, self.sla_scale, self.predictor))
        self.version = str(reply.get("version", ""))
        return PeerState(t0=now, last=now, next_tick=float(reply["first_tick_s"]), backlog=0.0)

    def close(self) -> None:
        """Stop the worker process, if any (idempotent)."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def _tick_input(self, observation: Observation, state: PeerState, traffic: dict[str, Any] | None) -> dict[str, Any]:
        ready_p, start_p = _counts(observation, Role.PREFILL)
        ready_d, start_d = _counts(observation, Role.DECODE)
        result: dict[str, Any] = {
            "tick_ordinal": state.ordinal,
            "active_prefill_count": ready_p,
            "active_decode_count": ready_d,
            "active_prefill_ids": list(range(ready_p)),
            "active_decode_ids": list(range(ready_d)),
            "starting_prefill_ids": list(range(ready_p, ready_p + start_p)),
            "starting_decode_ids": list(range(ready_d, ready_d + start_d)),
        }
        if traffic is not None:
            result["traffic"] = traffic
        return result

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: PeerState, now: float
    ) -> tuple[Decision, PeerState]:
        """Replay the planner's ticks due by ``now`` (5 s apart, so up to three a 15 s step), the step's traffic on
        the first of them: the ticks are late by up to one step, never early (their decisions apply now), and the
        planner's replay adapter merges the windows up to its next throughput tick."""
        if self._worker is None:
            raise RuntimeError("dynamo-planner: initial_state must be called first")
        t = now - state.t0
        now_backlog = backlog(observation)
        grown = now_backlog - state.backlog if now_backlog is not None and state.backlog is not None else 0.0
        traffic = _traffic(observation, now - state.last, grown)
        desired = dict(state.desired) if state.desired else {}
        reason, ordinal, next_tick = state.reason, state.ordinal, state.next_tick
        pending = traffic
        while next_tick is not None and next_tick <= t + 1e-6:
            st = PeerState(state.t0, now, next_tick, ordinal, desired, reason)
            reply = self._worker.request({"op": "tick", "result": self._tick_input(observation, st, pending)})
            pending = None
            ordinal += 1
            for role, key in ((Role.PREFILL, "target_prefill"), (Role.DECODE, "target_decode")):
                if reply.get(key) is not None:
                    desired[role] = int(reply[key])
            reason = str(reply.get("reason") or reason)
            next_tick = reply.get("next_tick_s")
        if pending is not None:
            # no tick was due: the window waits for the next one (the replay merges windows the same way)
            return self._hold(observation, desired, reason), PeerState(
                state.t0, state.last, next_tick, ordinal, desired or None, reason, state.backlog
            )
        return self._hold(observation, desired, reason), PeerState(
            state.t0, now, next_tick, ordinal, desired or None, reason, now_backlog
        )

    def _hold(self, observation: Observation, desired: dict[Role, int], reason: str) -> Decision:
        out = {r: desired.get(r, o.replicas) for r, o in observation.roles.items()}
        changed = [r for r, o in observation.roles.items() if out[r] != o.replicas]
        code = (
            ReasonCode.STEADY
            if not changed
            else ReasonCode.FORECAST_SCALE_UP
            if any(out[r] > observation.roles[r].replicas for r in changed)
            else ReasonCode.SCALE_DOWN
        )
        text = ", ".join(f"{r.value} {observation.roles[r].replicas}→{out[r]}" for r in changed) or "hold"
        return Decision(desired=out, reasons=(Reason(code, f"dynamo planner: {text} ({reason or 'no reason given'})"),))
