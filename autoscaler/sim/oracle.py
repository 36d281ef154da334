"""The oracle: knows the future arrivals and provisions the fewest replicas that meet the SLO.

Not causal — it reads the trace — so it lives in the simulator, not in the core. For each control window of
``window_s`` seconds it takes the trace's true demand in that window (requests/s, prompt tokens/s, output
tokens/s) and sizes each role with the core's capacity model at the SLO targets (``capacity.prefill_capacity``,
``capacity.decode_capacity``), multiplied by ``margin``. At time ``t`` it asks for the largest need over
``[t, t + cold start + interval]`` — so replicas are requested one cold start before they are needed — and
drops to the current need as soon as the load allows (the twin drains the released replicas).

How it is validated against the twin: the scorecard sweeps ``margin`` and interpolates the GPU-hours at which the
twin measures 99 % (95 %) attainment, so the oracle's figure is the cheapest future-knowing plan of this shape
that the twin confirms, not the model's own claim.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.capacity import Demand, ModelParams, decode_capacity, prefill_replicas
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.types import Decision, Observation, Reason, ReasonCode, Role

__all__ = ["OraclePolicy"]


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

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> dict[Role, np.ndarray]:
        """The per-window needs, computed once from the trace."""
        del now
        return self._need_table(spec)

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
