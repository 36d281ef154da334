"""The oracle: knows the future arrivals and provisions the fewest replicas that meet the SLO.

Not causal — it reads the trace — so it lives in the simulator, not in the core. For each control window of
``window_s`` seconds it takes the trace's true demand in that window (requests/s, prompt tokens/s, output
tokens/s) and sizes each role with the core's capacity model at the SLO targets (``capacity.prefill_capacity``,
``capacity.decode_capacity``), multiplied by ``margin``. At time ``t`` it asks for the largest need over
``[t, t + cold start + interval]`` — so replicas are requested one cold start before they are needed — and
drops to the current need as soon as the load allows (the twin drains the released replicas).

Refined on the twin (:func:`refine_on_twin`, what the scorecard runs): the model's schedule is only a start.
The twin replays the trace under the schedule; every window whose arrivals met the TTFT (ITL) target less often
than the per-window goal gets more prefill (decode) replicas, and every window whose arrivals all met it gives
one back; the pass repeats a few times. This is a greedy search of per-window fleets on the twin itself, not a
proof of optimality: the scorecard checks that the oracle's cost–attainment curve lies at or above every
causal policy's (docs/control.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.capacity import Demand, ModelParams, decode_capacity, prefill_replicas
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.types import Decision, Observation, Reason, ReasonCode, Role

__all__ = ["OraclePolicy", "refine_on_twin"]


class OraclePolicy:
    """Future-knowing provisioning over a trace (see the module docstring)."""

    name = "oracle"

    def __init__(
        self,
        trace: Any,
        profile: PerformanceProfile,
        *,
        margin: float = 1.0,
        window_s: float = 60.0,
        start_time_s: float = 0.0,
    ) -> None:
        self.profile = profile
        self.margin = margin
        self.window_s = window_s
        self.start_time_s = start_time_s
        arrivals = np.asarray(trace.arrivals_s, dtype=float)
        n_windows = math.ceil((float(arrivals[-1]) if arrivals.size else 0.0) / window_s) + 1
        idx = np.minimum((arrivals // window_s).astype(int), n_windows - 1)
        self.rate = np.bincount(idx, minlength=n_windows) / window_s
        self.prompt = (
            np.bincount(idx, weights=np.asarray(trace.input_tokens, float), minlength=n_windows) / window_s
        )
        self.output = (
            np.bincount(idx, weights=np.asarray(trace.output_tokens, float), minlength=n_windows) / window_s
        )
        self._needs: dict[tuple[Role, ...], np.ndarray] = {}
        #: per-role additive adjustments of the per-window need (set by :func:`refine_on_twin`)
        self.adjust: dict[Role, np.ndarray] = {}
        self._last_table: dict[Role, np.ndarray] = {}

    def _need_table(self, spec: InferenceAutoscalerSpec) -> dict[Role, np.ndarray]:
        model = ModelParams(disaggregated=spec.roles.disaggregated)
        q_t, q_i = spec.slo.ttft.quantile, spec.slo.itl.quantile
        t_t, t_i = spec.slo.ttft.target_s, spec.slo.itl.target_s
        roles = [Role(n) for n, _ in spec.roles.items()]
        out = {r: np.zeros(self.rate.size, dtype=int) for r in roles}
        for w in range(self.rate.size):
            d = Demand(self.rate[w], self.prompt[w], self.output[w])
            if d.arrival_rate <= 0:
                continue
            p = prefill_replicas(self.profile, t_t, d.arrival_rate, d.mean_prompt, q_t, model)
            tok = decode_capacity(self.profile, t_i, d, q_i, model)
            g = d.generation_tokens_rate / tok if tok > 0 else math.inf
            for r in roles:
                need = p if r == Role.PREFILL else g if r == Role.DECODE else p + g
                out[r][w] = 10**6 if not math.isfinite(need) else math.ceil(need * self.margin - 1e-9)
        return out

    def _need_table_cached(self) -> dict[Role, np.ndarray]:
        """The model's per-window needs of the last :meth:`initial_state` (without adjustments)."""
        return self._last_table

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> dict[Role, np.ndarray]:
        """The per-window needs, computed once from the trace (plus the twin refinement's adjustments)."""
        del now
        table = self._need_table(spec)
        self._last_table = {r: v.copy() for r, v in table.items()}
        for role, adj in self.adjust.items():
            if role in table:
                table[role] = np.maximum(0, table[role] + adj[: table[role].size])
        return table

    def decide(
        self,
        spec: InferenceAutoscalerSpec,
        observation: Observation,
        state: dict[Role, np.ndarray],
        now: float,
    ) -> tuple[Decision, dict[Role, np.ndarray]]:
        """Largest need over the lead time ahead, clamped to the role bounds."""
        del observation
        t = now - self.start_time_s
        lead = self.profile.cold_start_s + spec.control_interval_s
        first = int(t // self.window_s)
        last = int((t + lead) // self.window_s)
        desired = {}
        for name, rs in spec.roles.items():
            role = Role(name)
            table = state[role]
            lo, hi = min(first, table.size - 1), min(last, table.size - 1)
            need = int(table[lo : hi + 1].max()) if table.size else rs.min_replicas
            desired[role] = max(rs.min_replicas, min(rs.max_replicas, need))
        return Decision(desired=desired, reasons=(Reason(ReasonCode.FORECAST_SCALE_UP, "oracle"),)), state


def refine_on_twin(
    oracle: OraclePolicy,
    run: Any,
    goal: float,
    ttft_target_s: float,
    itl_target_s: float,
    passes: int = 3,
) -> Any:
    """Greedy per-window search on the twin (module docstring): ``run(oracle)`` simulates and returns the
    :class:`~autoscaler.sim.engine.SimResult`; windows below ``goal`` (share of their arrivals meeting the
    target) gain ``max(1, 10 %)`` replicas of the role that missed (a TTFT miss in a window where decode had
    more requests waiting than ready replicas is decode's: TTFT includes the wait for a decode slot), windows
    at 100 % lose one. Returns the result of the last run (the schedule it measured is the oracle's final
    one)."""
    roles = (Role.PREFILL, Role.DECODE)
    size = oracle.rate.size
    for r in roles:
        oracle.adjust.setdefault(r, np.zeros(size, dtype=int))
    result = run(oracle)
    # a window that needed more of a role keeps it: giving it back would undo the repair next pass
    raised = {r: np.zeros(size, dtype=bool) for r in roles}
    for _ in range(passes):
        w = np.minimum((np.asarray(result.arrival) // oracle.window_s).astype(int), size - 1)
        count = np.bincount(w, minlength=size).astype(float)
        ok_t = np.asarray(result.ttft) <= ttft_target_s
        itl = np.asarray(result.itl)
        ok_i = np.where(np.isnan(itl), True, itl <= itl_target_s)
        share = {
            Role.PREFILL: np.bincount(w, weights=ok_t.astype(float), minlength=size),
            Role.DECODE: np.bincount(w, weights=ok_i.astype(float), minlength=size),
        }
        changed = False
        table = oracle._need_table_cached()
        both_ok = np.bincount(w, weights=(ok_t & ok_i).astype(float), minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = {r: np.where(count > 0, share[r] / np.maximum(count, 1.0), 1.0) for r in roles}
        perfect = (count > 0) & (both_ok >= count)
        congested = _decode_congested_windows(result, oracle.window_s, size)
        for r in roles:
            base = table[r] + oracle.adjust[r]
            up = (count > 0) & (frac[r] < goal)
            if r == Role.DECODE:
                # TTFT includes waiting for a decode slot: a TTFT miss where decode was trimmed undoes the trim
                up |= (count > 0) & (frac[Role.PREFILL] < goal) & ((oracle.adjust[r] < 0) | congested)
            # only windows where every arrival met both targets give a replica back
            down = perfect & (base > 1) & ~raised[r]
            step = np.maximum(1, np.ceil(0.1 * base)).astype(int)
            adj = oracle.adjust[r]
            adj[up] += step[up]
            raised[r] |= up
            adj[down] -= np.maximum(1, np.floor(0.05 * base)).astype(int)[down]
            changed = changed or bool(up.any() or down.any())
        if not changed:
            break
        result = run(oracle)
    return result


def _decode_congested_windows(result: Any, window_s: float, size: int) -> np.ndarray:
    """Per window: whether the decode role ever had more requests waiting than ready replicas."""
    out = np.zeros(size, dtype=bool)
    ts = result.timeseries
    waiting, ready = ts.get("waiting.decode"), ts.get("ready.decode")
    if not waiting or not ready:
        return out
    for t, q, n in zip(ts["t"], waiting, ready, strict=True):
        if t is None or q is None or n is None:
            continue
        k = min(int(t // window_s), size - 1)
        if q > max(1.0, n):
            out[k] = True
    return out
