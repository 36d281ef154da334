"""The core's policies in the twin's registry: ``slo``, ``slo-noforecast``, the baselines and ``oracle``.

The core policies need a performance profile (``slo``, ``dynamo-planner``) and an ``InferenceAutoscalerSpec``; the
registry's factories only see the option text, so they return a :class:`CorePolicy` that the ``simulate``
command binds to the profile and the simulated fleet's shape (:meth:`CorePolicy.bind`) before the run.

Syntax (the knob after ``:`` is the one the scorecard sweeps; defaults are the peers' own):

- ``slo[:HEADROOM]`` — the controller (default headroom 0.5); ``slo-noforecast[:HEADROOM]`` with forecasting off;
- ``hpa-queue[:TARGET]`` (waiting requests per pod, default 5), ``hpa-kv[:TARGET]`` (KV use, default 0.8);
- ``keda[:THRESHOLD]`` (sum of waiting requests per replica, default 5); ``llm-d[:TARGET]`` (latency ratio,
  default 1.0; ``llmd`` is its deprecated alias); ``kpa[:TARGET]`` (concurrency per replica, default 16);
- ``dynamo-planner[:SLA_SCALE]`` — NVIDIA Dynamo's real planner from the peers environment (``make peers``), its
  SLA targets the scenario's × SLA_SCALE (default 1.0), :mod:`autoscaler.sim.peers.dynamo_planner`;
- ``oracle[:MARGIN]`` — needs the trace, so only the scorecard (``bench``) runs it.

The scorecard builds its policies here too (:func:`core_policy`), with its swept knob as the option.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec, parse_spec
from autoscaler.core.baselines import HPAPolicy, KEDAPolicy, KPAPolicy, LLMDPolicy
from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.slo import SLOPolicy, Tuning
from autoscaler.core.types import Decision, Observation, Policy
from autoscaler.errors import InputError
from autoscaler.sim.config import Mode, SimConfig
from autoscaler.sim.peers.dynamo_planner import DynamoPlannerPeer
from autoscaler.sim.policies import register_alias, register_policy

__all__ = ["CorePolicy", "core_policy", "spec_for_config"]


def spec_for_config(
    profile: PerformanceProfile, config: SimConfig, *, forecast: str = "auto", season_s: float = 86400.0
) -> InferenceAutoscalerSpec:
    """The InferenceAutoscaler spec a core policy gets for a simulated fleet (roles, bounds, SLO from
    ``config``; cost from the profile; the scorecard's behaviour)."""
    roles = {
        role.value: {
            "minReplicas": shape.min_replicas,
            "maxReplicas": max(1, shape.max_replicas),
            "gpusPerReplica": profile.gpus_per_replica,
        }
        for role, shape in config.roles.items()
    }
    pct = config.slo_percentile
    return parse_spec(
        {
            "poolRef": {"name": "sim"},
            "roles": roles,
            "slo": {
                "ttft": {"percentile": pct, "target": f"{config.slo_ttft_s * 1000:g}ms"},
                "itl": {"percentile": pct, "target": f"{config.slo_itl_s * 1000:g}ms"},
            },
            "metrics": {"prometheus": {"url": "http://prometheus:9090"}},
            "performance": {"profile": profile.name},
            "cost": {"accelerator": profile.accelerator, "pricePerGpuHour": f"{profile.price_per_gpu_hour:.4f}"},
            "forecast": {"method": forecast, "season": f"{max(1, round(season_s))}s"},
            "behavior": {
                "scaleUp": {"tolerance": 0.0},
                "scaleDown": {"stabilizationWindow": "2m", "tolerance": 0.05},
            },
        }
    )


@dataclass(slots=True)
class CorePolicy:
    """A core policy waiting for its profile and spec: call :meth:`bind` before simulating.

    Calling :meth:`decide` unbound is an error (the engine would otherwise pass ``spec=None``).
    """

    name: str
    make: Callable[[PerformanceProfile], Any]
    forecast: str = "auto"

    def bind(
        self, profile: PerformanceProfile, config: SimConfig
    ) -> tuple[Policy[Any, Any], InferenceAutoscalerSpec]:
        """The concrete policy and the spec for this fleet."""
        if config.mode is Mode.AGGREGATED and self.name.startswith("dynamo"):
            raise InputError("dynamo-planner sizes prefill and decode separately: use --mode disaggregated",
                             source="--policy")
        policy = self.make(profile)
        policy.name = self.name
        return policy, spec_for_config(profile, config, forecast=self.forecast)

    def initial_state(self, spec: object, now: float) -> None:
        """Unbound: refuse."""
        raise InputError(f"policy {self.name} must be bound to a profile first", source="--policy")

    def decide(self, spec: object, observation: Observation, state: None, now: float) -> tuple[Decision, None]:
        """Unbound: refuse."""
        raise InputError(f"policy {self.name} must be bound to a profile first", source="--policy")


def _knob(policy: str, options: str, default: float) -> float:
    if not options:
        return default
    try:
        value = float(options)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise InputError(f"{policy}: expected a positive number after ':', got {options!r}", source="--policy")
    return value


def _register(name: str, usage: str, default: float, build: Callable[[float, PerformanceProfile], Any],
              forecast: str = "auto") -> None:
    def factory(options: str) -> CorePolicy:
        k = _knob(name, options, default)
        label = f"{name}:{options}" if options else name
        return CorePolicy(label, lambda profile: build(k, profile), forecast)

    register_policy(name, factory, usage)
    _FACTORIES[name] = factory


_FACTORIES: dict[str, Callable[[str], CorePolicy]] = {}


def core_policy(name: str, knob: float, profile: PerformanceProfile) -> Any:
    """The registered core policy ``name`` with its knob set to ``knob``, built for ``profile`` and named
    ``name`` (the scorecard's label); :class:`KeyError` if ``name`` is not a core policy."""
    policy = _FACTORIES[name](repr(knob)).make(profile)
    policy.name = name
    return policy


_register("slo", "slo[:HEADROOM=0.5]", 0.5, lambda k, p: SLOPolicy(p, tuning=Tuning(headroom=k)))
_register(
    "slo-noforecast", "slo-noforecast[:HEADROOM=0.5]", 0.5,
    lambda k, p: SLOPolicy(p, tuning=Tuning(headroom=k)), forecast="off",
)
_register("hpa-queue", "hpa-queue[:TARGET=5]", 5.0, lambda k, p: HPAPolicy("queue", k))
_register("hpa-kv", "hpa-kv[:TARGET=0.8]", 0.8, lambda k, p: HPAPolicy("kv", k))
_register("keda", "keda[:THRESHOLD=5]", 5.0, lambda k, p: KEDAPolicy(k))
_register("llm-d", "llm-d[:TARGET=1.0]", 1.0, lambda k, p: LLMDPolicy(k))
# the twin's registry named it ``llmd`` (docs/control.md), while the scorecard and the policy itself say llm-d
register_alias("llmd", _FACTORIES["llm-d"])
_register("kpa", "kpa[:TARGET=16]", 16.0, lambda k, p: KPAPolicy(k))
_register("dynamo-planner", "dynamo-planner[:SLA_SCALE=1.0]", 1.0, lambda k, p: DynamoPlannerPeer(p, k))


def _oracle_factory(options: str) -> CorePolicy:
    raise InputError(
        "oracle needs the future trace: run it with `inference-autoscaler bench --policies oracle`",
        source="--policy",
    )


register_policy("oracle", _oracle_factory, "oracle (bench only)")
