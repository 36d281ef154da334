"""Hypothesis strategies and small builders for the control-core tests (one module, shared)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec, parse_spec
from autoscaler.core.types import DataFlag, Observation, Role, RoleObservation


@dataclass(frozen=True)
class TableProfile:
    """A profile in closed form with the shape of Splitwise's Llama2-70B TP4 on H100 measurements
    (prefill ≈ 60 ms + 0.11 ms/token, decode ≈ 29 ms + 0.35 ms/seq + 1.6 µs/context-token). Used until the
    measured catalogue is available to the tests; the numbers only need the right shape here."""

    name: str = "test/h100/tp4"
    model: str = "Llama2-70B"
    accelerator: str = "H100"
    gpus_per_replica: int = 4
    kv_bytes_per_token: int = 327680
    kv_capacity_tokens: int = 450_000
    cold_start_s: float = 120.0
    price_per_gpu_hour: float = 4.0
    max_batch_size: int = 256
    speed: float = 1.0  # >1 is a faster accelerator

    def prefill_time_s(self, tokens: float) -> float:
        return (0.06 + 0.00011 * tokens) / self.speed

    def decode_step_s(self, batch_size: float, context_tokens: float) -> float:
        return (0.029 + 0.00035 * batch_size + 1.6e-9 * batch_size * context_tokens * 100) / self.speed

    def kv_transfer_s(self, tokens: float) -> float:
        return 0.002 + tokens * 2e-6


def make_spec(
    *, disaggregated: bool = True, lo: int = 1, hi: int = 40, extra: dict[str, Any] | None = None,
) -> InferenceAutoscalerSpec:
    roles: dict[str, Any]
    if disaggregated:
        roles = {"prefill": {"minReplicas": lo, "maxReplicas": hi, "gpusPerReplica": 4},
                 "decode": {"minReplicas": lo, "maxReplicas": hi, "gpusPerReplica": 4}}
    else:
        roles = {"both": {"minReplicas": lo, "maxReplicas": hi, "gpusPerReplica": 4}}
    raw: dict[str, Any] = {
        "poolRef": {"name": "pool"},
        "roles": roles,
        "slo": {"ttft": {"percentile": 95, "target": "1s"}, "itl": {"percentile": 95, "target": "100ms"}},
        "metrics": {"prometheus": {"url": "http://prom:9090"}},
        "performance": {"coldStart": "60s"},
        "forecast": {"season": "1h"},
    }
    for key, value in (extra or {}).items():
        raw[key] = value
    return parse_spec(raw)


def role_obs(replicas: int, *, rate: float = 5.0, prompt: float = 1000.0, output: float = 200.0,
             ttft: float | None = 0.5, itl: float | None = 0.05, starting: int = 0,
             flags: frozenset[DataFlag] = frozenset()) -> RoleObservation:
    return RoleObservation(
        replicas=replicas, ready=max(0, replicas - starting), starting=starting, ttft=ttft, itl=itl,
        queue_depth=1.0, running=10.0, kv_utilization=0.5, arrival_rate=rate,
        prompt_tokens_rate=rate * prompt, generation_tokens_rate=rate * output,
        reporting=max(0, replicas - starting), flags=flags,
    )


def observation(t: float, roles: dict[Role, RoleObservation], ok: bool = True) -> Observation:
    return Observation(time=t, roles=roles, source_ok=ok, error="" if ok else "timeout")


rates = st.floats(min_value=0.0, max_value=200.0, allow_nan=False)
latencies = st.one_of(st.none(), st.floats(min_value=0.001, max_value=30.0), st.just(float("nan")))
flag_sets = st.frozensets(st.sampled_from(list(DataFlag)), max_size=2)


@st.composite
def role_observations(draw: st.DrawFn, lo: int = 1, hi: int = 40) -> RoleObservation:
    replicas = draw(st.integers(min_value=0, max_value=hi + 5))
    starting = draw(st.integers(min_value=0, max_value=replicas))
    rate = draw(rates)
    return RoleObservation(
        replicas=replicas, ready=replicas - starting, starting=starting,
        ttft=draw(latencies), itl=draw(latencies),
        queue_depth=draw(st.one_of(st.none(), st.floats(0, 500))),
        running=draw(st.one_of(st.none(), st.floats(0, 500))),
        kv_utilization=draw(st.one_of(st.none(), st.floats(0, 1))),
        arrival_rate=draw(st.one_of(st.none(), st.just(rate))),
        prompt_tokens_rate=rate * draw(st.floats(50, 4000)),
        generation_tokens_rate=rate * draw(st.floats(10, 800)),
        reporting=replicas - starting,
        flags=draw(flag_sets),
    )


@st.composite
def observations(draw: st.DrawFn, disaggregated: bool = True) -> Observation:
    roles = [Role.PREFILL, Role.DECODE] if disaggregated else [Role.BOTH]
    ok = draw(st.booleans().map(lambda b: b or draw(st.booleans())))
    return Observation(time=0.0, roles={r: draw(role_observations()) for r in roles}, source_ok=ok)
