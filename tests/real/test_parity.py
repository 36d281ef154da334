"""Parity: the digital twin and the real async reconciler make identical decisions on identical inputs.

The twin's figures are evidence about the controller only if both drive the same ``decide`` the same way. This
test runs a short trace segment through the twin with the production policy, recording every observation and
decision; then it replays each tick through the real :class:`~autoscaler.controller.reconciler.Reconciler`
against the local control plane — the Deployments' replicas set to what the twin had (the real Deployment and
ReplicaSet controllers create and delete the Pods), those Pods' readiness set to the twin's, the metrics source
answering with the twin's observation, the clock at the twin's time — and expects the policy to see the same
observation and return the same decision, tick after tick, with its state carried by the reconciler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoscaler.adapters.cluster import KubeCluster
from autoscaler.adapters.kube import KubeTransport, new_api_client
from autoscaler.api.v1alpha1 import InferenceAutoscalerSpec, parse_spec
from autoscaler.catalog import load_profile
from autoscaler.controller.manager import Controller
from autoscaler.core.slo import SLOPolicy
from autoscaler.core.types import Decision, Observation, Role
from autoscaler.ports import PoolQuery
from autoscaler.settings import ControllerSettings
from autoscaler.sim.config import Mode, RoleShape, SimConfig
from autoscaler.sim.engine import simulate
from autoscaler.sim.scorecard import build_spec
from autoscaler.sim.traces import bundled_trace_path, load_trace
from tests.fixtures.controller import NS, eventually, fleet

PROFILE = "llama2-70b/h100/tp4"
POOL = "parity"


@dataclass
class Recording:
    """Wraps a policy and records what it saw and decided."""

    inner: Any
    seen: list[tuple[float, Observation, Decision]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def initial_state(self, spec: InferenceAutoscalerSpec, now: float) -> Any:
        return self.inner.initial_state(spec, now)

    def decide(self, spec: InferenceAutoscalerSpec, obs: Observation, state: Any, now: float) -> Any:
        decision, state = self.inner.decide(spec, obs, state, now)
        self.seen.append((now, obs, decision))
        return decision, state


class Replay:
    """A MetricsSource answering with the observation of the tick being replayed."""

    def __init__(self) -> None:
        self.current: Observation | None = None

    async def observe(self, queries: Sequence[PoolQuery], now: float) -> Mapping[str, Observation]:
        assert self.current is not None
        return {q.key: self.current for q in queries}


class ReplayClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:  # the replay drives ticks itself
        self.t += seconds


def _spec_dict() -> dict[str, Any]:
    spec = build_spec(load_profile(PROFILE), max_replicas=16)
    raw = spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    raw["poolRef"] = {"name": POOL}
    raw["actuation"] = "DryRun"  # the replay sets replicas from the twin; the reconciler must not move them
    return raw


async def test_twin_and_reconciler_decide_identically(kube_server: Any, kubeconfig_path: Path) -> None:
    raw = _spec_dict()
    spec = parse_spec(raw)
    profile = load_profile(PROFILE)
    trace = load_trace(bundled_trace_path("azure_conv"), start_s=600, end_s=1500, rate_scale=2.0)
    config = SimConfig(
        mode=Mode.DISAGGREGATED,
        roles={
            Role.PREFILL: RoleShape(initial=2, max_replicas=16),
            Role.DECODE: RoleShape(initial=4, max_replicas=16),
        },
        start_time_s=1_700_000_000.0,
    )
    twin = Recording(SLOPolicy(profile))
    simulate(trace, profile, config, twin, spec, seed=7)
    assert len(twin.seen) >= 40, "the segment should give the policy many ticks"

    kube_server.kubelet.set_ready_after(3600.0)  # the replay, not the kubelet stand-in, decides readiness
    fleet(kube_server, POOL, prefill=2, decode=4)
    kube_server.create(
        {
            "apiVersion": "autoscaler.inference.dev/v1alpha1",
            "kind": "InferenceAutoscaler",
            "metadata": {"name": POOL, "namespace": NS},
            "spec": raw,
        }
    )
    settings = ControllerSettings(
        kubeconfig=str(kubeconfig_path), leader_elect=False, health_port=-1, metrics_batch_linger=0.0
    )
    transport = KubeTransport(await new_api_client(settings.kubeconfig), timeout_s=settings.api_timeout)
    replay, clock = Replay(), ReplayClock()
    controller_policy = Recording(SLOPolicy(profile))
    controller = Controller(
        settings, KubeCluster(transport), controller_policy, lambda s: ("replay", replay), clock=clock
    )
    controller.ias.start()
    controller.fleet.start()
    try:
        await controller.ias.wait_synced(10)
        await controller.fleet.wait_synced(10)
        for now, obs, _ in twin.seen:
            for role, ro in obs.roles.items():
                await _apply_role(kube_server, role, ro.replicas, ro.ready)
            await eventually(lambda obs=obs: _cache_matches(controller, obs), within=10)
            replay.current, clock.t = obs, now
            await controller.reconciler.reconcile_once(f"{NS}/{POOL}")
    finally:
        await controller.ias.stop()
        await controller.fleet.stop()
        await transport.close()

    assert len(controller_policy.seen) == len(twin.seen)
    for (t_twin, obs_twin, dec_twin), (t_ctl, obs_ctl, dec_ctl) in zip(
        twin.seen, controller_policy.seen, strict=True
    ):
        assert t_ctl == t_twin
        assert obs_ctl == obs_twin, f"at t={t_twin}: the reconciler saw a different observation"
        assert dec_ctl == dec_twin, f"at t={t_twin}: different decisions"
    desired = {tuple(sorted((r.value, n) for r, n in d.desired.items())) for _, _, d in twin.seen}
    assert len(desired) > 1, "the segment should make the policy change its mind at least once"


def _live_pods(server: Any, deployment: str) -> list[dict[str, Any]]:
    return sorted(
        (p for p in server.kube.list_objects("v1", "Pod", NS, label_selector=f"workload={deployment}")
         if not p["metadata"].get("deletionTimestamp")),
        key=lambda p: p["metadata"]["name"],
    )


def _is_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


async def _apply_role(server: Any, role: Role, replicas: int, ready: int) -> None:
    """The role's Deployment at ``replicas`` (its ReplicaSet makes the Pods), the first ``ready`` of them Ready."""
    deployment = f"{POOL}-{role.value}"
    if server.get("apps/v1", "Deployment", deployment, NS)["spec"]["replicas"] != replicas:
        server.kube.patch("apps/v1", "Deployment", deployment, NS, {"spec": {"replicas": replicas}})
    pods = await eventually(lambda: len(p := _live_pods(server, deployment)) == replicas and p, within=30)
    for index, pod in enumerate(pods):
        want = index < ready
        if _is_ready(pod) != want:
            status = {"phase": "Running" if want else "Pending",
                      "conditions": [{"type": "Ready", "status": "True" if want else "False"}]}
            server.kube.patch("v1", "Pod", pod["metadata"]["name"], NS, {"status": status}, sub="status",
                              patch_type="strategic")


def _cache_matches(controller: Controller, obs: Observation) -> bool:
    for role, ro in obs.roles.items():
        deployment = controller.fleet.informers["Deployment"].get(NS, f"{POOL}-{role.value}")
        if deployment is None or deployment["spec"]["replicas"] != ro.replicas:
            return False
        pods = [
            p
            for p in controller.fleet.informers["Pod"].in_namespace(NS)
            if (p["metadata"].get("labels") or {}).get("workload") == f"{POOL}-{role.value}"
        ]
        ready = sum(1 for p in pods if (p.get("status") or {}).get("ready"))
        if len(pods) != ro.replicas or ready != ro.ready:
            return False
    return True
