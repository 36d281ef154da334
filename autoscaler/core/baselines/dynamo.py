"""A Dynamo-style SLA planner: forecast × profile every 180 s, prefill and decode sized separately.

Source: ai-dynamo/dynamo ``components/src/dynamo/planner/core/throughput_scaling.py`` (and the planner docs).
Every adjustment interval (180 s) the planner:

* averages the last interval's request rate, input length (ISL) and output length (OSL), and predicts the next
  interval's values with one predictor each (``constant`` = last value; ``kalman`` = a local-level Kalman
  filter; Dynamo's default ARIMA and Prophet need libraries this project does not ship, so they are not offered);
* corrects the profile with ``p = observed TTFT / profile TTFT(ISL)`` and ``d = observed ITL / profile ITL``;
* prefill: ``ceil(λ · ISL · min(1, p) / (ISL / prefill(ISL)))`` replicas (profile tokens/s at the ISL), or
  ``ceil(current · TTFT / SLO)`` if the SLO is already broken, whichever is larger;
* decode: best throughput per replica whose step time ≤ ``ITL SLO / d`` at context ``ISL + OSL/2`` within the KV
  cache and the batch limit; ``ceil(λ · OSL / that)`` replicas;
* adds at most 8 replicas per role per step, and takes no action while replicas are still starting.

Knobs: the predictor and a capacity safety factor (multiplies the predicted load).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec
from autoscaler.core.capacity import Demand, ModelParams, decode_batch_limit, predicted_itl
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.types import Decision, Observation, Reason, ReasonCode, Role

__all__ = ["DynamoPlannerPolicy", "DynamoState"]

INTERVAL_S = 180.0
MAX_ADD = 8


@dataclass(frozen=True, slots=True)
class DynamoState:
    """Samples of the running interval and each predictor's state ``(estimate, variance)``."""

    interval_start: float | None = None
    samples: tuple[tuple[float, float, float], ...] = ()  # (requests/s, prompt tok/s, output tok/s)
    kalman: tuple[tuple[float, float], ...] = ()
    predicted: tuple[float, float, float] | None = None
    desired: tuple[tuple[Role, int], ...] = field(default_factory=tuple)


def _kalman(prev: tuple[float, float] | None, y: float, q: float, r: float) -> tuple[float, float]:
    """Local-level Kalman filter step (process noise ``q``, measurement noise ``r`` relative to y²)."""
    if prev is None:
        return y, max(1e-9, r * y * y)
    x, p = prev
    scale = max(1e-9, y * y)
    p = p + q * scale
    k = p / (p + r * scale)
    return x + k * (y - x), (1 - k) * p


class DynamoPlannerPolicy:
    """Dynamo's throughput-based SLA planner on the twin's signals."""

    name = "dynamo"

    def __init__(self, profile: PerformanceProfile, predictor: str = "constant", safety: float = 1.0) -> None:
        if predictor not in ("constant", "kalman"):
            raise ValueError(f"predictor must be 'constant' or 'kalman', got {predictor!r}")
        self.profile = profile
        self.predictor = predictor
        self.safety = safety

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> DynamoState:
        """Start the first interval now."""
        del spec
        return DynamoState(interval_start=now)

    def decide(
        self, spec: InferenceAutoscalerSpec, observation: Observation, state: DynamoState, now: float
    ) -> tuple[Decision, DynamoState]:
        """Collect samples; every 180 s size both roles from the prediction."""
        roles = [(Role(n), rs) for n, rs in spec.roles.items()]
        current = {
            r: observation.roles[r].replicas if r in observation.roles else rs.min_replicas for r, rs in roles
        }
        front = observation.roles.get(Role.BOTH) or observation.roles.get(Role.PREFILL)
        back = observation.roles.get(Role.BOTH) or observation.roles.get(Role.DECODE)
        samples = state.samples
        if observation.source_ok and front is not None and back is not None:
            f, b = front.sanitized(), back.sanitized()
            if (
                f.arrival_rate is not None
                and f.prompt_tokens_rate is not None
                and b.generation_tokens_rate is not None
            ):
                samples = (*samples, (f.arrival_rate, f.prompt_tokens_rate, b.generation_tokens_rate))
        start = state.interval_start if state.interval_start is not None else now
        hold = Decision(desired=current, reasons=(Reason(ReasonCode.STEADY, "within the planner interval"),))
        if now - start < INTERVAL_S - 1e-9:
            return hold, DynamoState(start, samples, state.kalman, state.predicted, state.desired)
        new_state = DynamoState(now, (), state.kalman, state.predicted, state.desired)
        if not samples:
            return Decision(
                desired=current, reasons=(Reason(ReasonCode.METRICS_UNAVAILABLE, "no samples"),)
            ), new_state
        if any(observation.roles[r].starting > 0 for r, _ in roles if r in observation.roles):
            return Decision(
                desired=current,
                reasons=(Reason(ReasonCode.ACTION_IN_PROGRESS, "replicas still starting: no new action"),),
            ), new_state
        n = len(samples)
        obs_vals = tuple(sum(s[i] for s in samples) / n for i in range(3))
        if self.predictor == "kalman":
            prev = state.kalman or (None, None, None)
            kal = tuple(_kalman(prev[i], obs_vals[i], 0.05, 0.1) for i in range(3))
            pred = tuple(k[0] for k in kal)
        else:
            kal, pred = state.kalman, obs_vals
        rate, prompt_rate, out_rate = (max(0.0, v) * self.safety for v in pred)
        isl = prompt_rate / rate if rate > 1e-9 else 512.0
        osl = out_rate / rate if rate > 1e-9 else 128.0
        prof = self.profile
        ttft_slo, itl_slo = spec.slo.ttft.target_s, spec.slo.itl.target_s
        desired: dict[Role, int] = {}
        for role, rs in roles:
            ro = observation.roles.get(role)
            if ro is None:
                desired[role] = current[role]
                continue
            ro = ro.sanitized()
            if role in (Role.PREFILL, Role.BOTH):
                expect = prof.prefill_time_s(isl)
                p_corr = (ro.ttft / expect) if ro.ttft and expect > 0 else 1.0
                thpt = isl / prof.prefill_time_s(isl)
                need = math.ceil(rate * isl * min(1.0, p_corr) / thpt - 1e-9) if thpt > 0 else rs.max_replicas
                if ro.ttft is not None and ro.ttft > ttft_slo:
                    need = max(need, math.ceil(current[role] * ro.ttft / ttft_slo))
            else:
                need = 0
            if role in (Role.DECODE, Role.BOTH):
                ctx = isl + osl / 2
                dem = Demand(rate, rate * isl, rate * osl)
                expect_itl = predicted_itl(prof, max(1, ro.ready), dem, 0.5, ModelParams())
                d_corr = (
                    (ro.itl / expect_itl) if ro.itl and math.isfinite(expect_itl) and expect_itl > 0 else 1.0
                )
                bmax = decode_batch_limit(prof, itl_slo / max(d_corr, 1e-3), ctx, isl + osl)
                thpt_d = bmax / prof.decode_step_s(bmax, ctx) if bmax >= 1 else 0.0
                need_d = math.ceil(rate * osl / thpt_d - 1e-9) if thpt_d > 0 else rs.max_replicas
                need = need + need_d if role == Role.BOTH else need_d
            need = min(need, current[role] + MAX_ADD)
            desired[role] = max(rs.min_replicas, min(rs.max_replicas, need))
        code = (
            ReasonCode.FORECAST_SCALE_UP
            if any(desired[r] > current[r] for r, _ in roles)
            else (
                ReasonCode.SCALE_DOWN if any(desired[r] < current[r] for r, _ in roles) else ReasonCode.STEADY
            )
        )
        text = ", ".join(f"{r.value} {current[r]}→{desired[r]}" for r, _ in roles)
        return Decision(desired=desired, reasons=(Reason(code, f"planner: {text}"),)), DynamoState(
            now, (), tuple(kal), (rate, prompt_rate, out_rate), tuple(desired.items())
        )
