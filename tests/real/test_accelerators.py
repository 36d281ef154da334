"""``spec.cost.allowedAccelerators`` through the policy ``inference-autoscaler run`` ships (``ProfilePolicy``):
each allowed type's own profile is loaded, the cost optimiser mixes types under their availability caps and the
budget, and the status says which mix it chose. The observations are a fake metrics source (the Prometheus path
is tested elsewhere); the Kubernetes side is the real apiserver."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.controller.profile_policy import ProfilePolicy
from autoscaler.core.types import Role, RoleObservation
from tests.fixtures.controller import NS, FakeMetrics, condition, eventually, fleet, ias, ias_status

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_leaked_tasks")]

H100_CAP = 2


def _load(replicas: int, rate: float = 20.0) -> RoleObservation:
    """A steady disaggregated role at ``rate`` requests/s (1,000-token prompts, 200-token outputs)."""
    return RoleObservation(
        replicas=replicas, ready=replicas, starting=0, ttft=0.5, itl=0.05, queue_depth=1.0, running=10.0,
        kv_utilization=0.5, arrival_rate=rate, prompt_tokens_rate=rate * 1000, generation_tokens_rate=rate * 200,
        reporting=replicas,
    )


def _mixed(name: str, **cost: Any) -> dict[str, Any]:
    allowed = [
        {"name": "H100", "pricePerGpuHour": "4.00", "maxReplicas": H100_CAP},
        {"name": "A100", "pricePerGpuHour": "2.20", "profile": "llama2-70b/a100/tp4"},
    ]
    return ias(name, name, max_replicas=40, performance={"profile": "llama2-70b/h100/tp4"},
               cost={"accelerator": "H100", "pricePerGpuHour": "4.00", "allowedAccelerators": allowed, **cost})


def _plans(cluster: Any, name: str) -> dict[str, dict[str, int]] | None:
    roles = ias_status(cluster, name).get("roles", {})
    plans = {role: rs.get("acceleratorPlan") for role, rs in roles.items()}
    return plans if plans and all(plans.values()) else None


async def test_the_plan_mixes_accelerators_under_their_caps(kube_server, make_controller):
    fleet(kube_server, "mix", prefill=4, decode=4)
    kube_server.create(_mixed("mix"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/mix", prefill=_load(4), decode=_load(4))
    await make_controller(ProfilePolicy(), metrics)

    plans = await eventually(lambda: _plans(kube_server, "mix"), within=20)
    roles = ias_status(kube_server, "mix")["roles"]
    for role in ("prefill", "decode"):
        plan = plans[role]
        assert set(plan) <= {"H100", "A100"} and plan.get("H100", 0) <= H100_CAP, plan
        assert roles[role]["accelerator"] == max(plan, key=lambda k: plan[k])
    # The A100 option exists only through its own profile: without it the plan would be H100 alone.
    assert any("A100" in plan for plan in plans.values()), plans
    assert sum(plans["prefill"].values()) > H100_CAP  # the demand needs more than the H100s available


async def test_a_budget_caps_the_plan_and_says_so(kube_server, make_controller):
    fleet(kube_server, "cheap", prefill=4, decode=4)
    kube_server.create(_mixed("cheap", budgetPerHour="40"))
    metrics = FakeMetrics()
    metrics.set(f"{NS}/cheap", prefill=_load(4, rate=40.0), decode=_load(4, rate=40.0))
    await make_controller(ProfilePolicy(), metrics)

    cond = await eventually(lambda: condition(kube_server, "cheap", "BudgetLimited"), within=20)
    assert cond["status"] == "True", cond
    plans = await eventually(lambda: _plans(kube_server, "cheap"), within=20)
    assert all(plan.get("H100", 0) <= H100_CAP for plan in plans.values()), plans
    assert Role.PREFILL.value in plans and Role.DECODE.value in plans
