"""Fidelity of the fleet model against closed-form expectations from a profile with known step times."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.core.types import Role
from autoscaler.sim.config import Mode, RoleShape, RouterKind, SimConfig
from autoscaler.sim.engine import simulate
from autoscaler.sim.fleet import Fleet, ReplicaState
from autoscaler.sim.policies import policy_from_string
from tests.fixtures.sim_doubles import LinearProfile, make_trace, poisson_trace

AGG1 = SimConfig(roles={Role.BOTH: RoleShape(initial=1, max_replicas=8)})


def _fleet(trace, profile, config=AGG1, warm=True):
    fleet = Fleet(config, {r: profile for r in config.roles}, trace.arrivals_s, trace.input_tokens,
                  trace.output_tokens, trace.hash_ids)
    for role, shape in config.roles.items():
        for _ in range(shape.initial):
            fleet.add_replica(role, 0.0, warm=warm)
    return fleet


@pytest.mark.parametrize(("inp", "out"), [(128, 2), (512, 64), (2048, 300), (8000, 17)])
@pytest.mark.parametrize("per_ctx", [0.0, 2e-6])
def test_one_request_at_a_time_matches_profile(inp: int, out: int, per_ctx: float) -> None:
    prof = LinearProfile(decode_per_ctx=per_ctx)
    # requests far apart: each runs alone on the replica
    trace = make_trace([0.0, 100.0, 200.0], inp, out)
    res = simulate(trace, prof, AGG1, policy_from_string("static:1"))
    chunks = math.ceil(inp / 8192)
    assert chunks == 1
    expected_ttft = prof.prefill_time_s(inp)
    mid_ctx = inp + 1 + (out - 2) / 2
    expected_itl = prof.decode_step_s(1, mid_ctx)
    assert np.allclose(res.ttft, expected_ttft, rtol=0.02)
    assert np.allclose(res.itl, expected_itl, rtol=0.02)
    assert np.allclose(res.e2e, expected_ttft + (out - 1) * expected_itl, rtol=0.02)


def test_chunked_prefill_splits_long_prompt_into_budgeted_iterations() -> None:
    prof = LinearProfile()
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=1)}, chunk_tokens=1000)
    res = simulate(make_trace([0.0], 2500, 2), prof, cfg, policy_from_string("static:1"))
    expected = 2 * prof.prefill_time_s(1000) + prof.prefill_time_s(500)
    assert res.ttft[0] == pytest.approx(expected, rel=1e-9)


def test_chunked_prefill_interferes_with_running_decode() -> None:
    prof = LinearProfile()
    # a long decode is running when a prompt arrives: its token gap during that iteration grows
    trace = make_trace([0.0, 1.0], [100, 4000], [200, 2])
    fleet = _fleet(trace, prof)
    fleet.run(100.0)
    rep = fleet.replicas[0]
    mixed = prof.decode_step_s(1, 0) + prof.prefill_time_s(4000)
    pure = prof.decode_step_s(1, 0)
    # first request's mean ITL includes exactly one mixed iteration and one step shared with the newcomer
    both = prof.decode_step_s(2, 0)
    assert fleet.itl[0] == pytest.approx((197 * pure + mixed + both) / 199, rel=1e-9)
    assert rep.itl_counts[np.searchsorted([0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5], mixed)] >= 1


def test_little_law_and_throughput_on_steady_poisson_load() -> None:
    prof = LinearProfile()
    trace = poisson_trace(rate=3.0, duration=1800.0, inp=500, out=100, seed=1)
    fleet = _fleet(trace, prof)
    samples = []
    for t in np.arange(1.0, 1800.0, 0.5):
        fleet.run(float(t))
        samples.append(sum(r.outstanding for r in fleet.replicas))
    fleet.run(1e9)
    assert fleet.failed == 0 and fleet.in_flight == 0
    lam = len(trace) / 1800.0
    w = float(np.mean(fleet.e2e))
    L = float(np.mean(samples))
    assert pytest.approx(lam * w, rel=0.1) == L
    done = np.sum(trace.arrivals_s + fleet.e2e <= 1800.0)
    assert done / 1800.0 == pytest.approx(lam, rel=0.05)


def test_saturated_replica_queue_grows_linearly() -> None:
    prof = LinearProfile(max_batch_size=8)
    # capacity ≈ 8 seqs / (200 × ~32 ms) ≈ 1.2 req/s; offer 4 req/s
    trace = poisson_trace(rate=4.0, duration=1200.0, inp=200, out=200, seed=2)
    fleet = _fleet(trace, prof)
    times = np.arange(100.0, 1201.0, 100.0)
    queue = []
    for t in times:
        fleet.run(float(t))
        queue.append(len(fleet.replicas[0].waiting))
    slope, intercept = np.polyfit(times, queue, 1)
    fitted = slope * times + intercept
    r2 = 1 - np.sum((queue - fitted) ** 2) / np.sum((queue - np.mean(queue)) ** 2)
    assert slope > 2.0  # ≈ 4 − 1.2 req/s
    assert r2 > 0.98
    assert queue[-1] > 1.8 * queue[len(queue) // 2 - 1]


def test_kv_admission_queues_until_memory_frees() -> None:
    prof = LinearProfile(kv_capacity_tokens=1500)
    trace = make_trace([0.0, 0.001], 1000, 50)
    fleet = _fleet(trace, prof)
    fleet.run(1e6)
    assert fleet.failed == 0
    # the second request could only start after the first freed its KV
    assert trace.arrivals_s[1] + fleet.ttft[1] >= fleet.e2e[0] - 1e-9


def test_preemption_recomputes_and_completes_everything() -> None:
    prof = LinearProfile(kv_capacity_tokens=3000)
    # both fit at admission (2 × 1000) but grow to 2 × 1800 > 3000
    trace = make_trace([0.0, 0.0], 1000, 800)
    fleet = _fleet(trace, prof)
    fleet.run(1e6)
    rep = fleet.replicas[0]
    assert rep.preemptions >= 1
    assert fleet.failed == 0
    assert rep.gen_tokens == 1600
    # the preempted request re-prefilled its prompt plus what it had generated
    assert fleet.prefill_tokens_computed > 2000
    assert rep.S == 0 and rep.b == 0 and rep.kv_reserved == 0


def test_request_larger_than_kv_cache_fails_cleanly() -> None:
    prof = LinearProfile(kv_capacity_tokens=500)
    res = simulate(make_trace([0.0, 1.0], [1000, 100], [5, 5]), prof, AGG1, policy_from_string("static:1"))
    assert res.summary["failed"] == 1
    assert math.isinf(res.ttft[0]) and math.isfinite(res.ttft[1])


def test_cold_start_and_billing_start_at_request() -> None:
    prof = LinearProfile(cold_start_s=60.0)
    trace = make_trace([0.0, 299.0], 100, 10)
    res = simulate(trace, prof, AGG1, policy_from_string("static:2"))
    # a second replica is asked for at the first control instant (15 s) and billed from then
    end = res.summary["duration_s"]
    gpus = prof.gpus_per_replica
    assert res.summary["gpu_hours"]["total"] == pytest.approx((end * gpus + (end - 15.0) * gpus) / 3600)
    assert res.timeseries["ready.both"][3] == 1.0  # t = 60 s: still cold
    assert res.timeseries["ready.both"][5] == 2.0  # t = 90 s ≥ 15 + 60


def test_scale_down_cancels_starting_first_then_drains_finishing_in_flight_work() -> None:
    prof = LinearProfile(cold_start_s=30.0)
    trace = make_trace([0.0, 0.0, 0.0, 0.0], 100, 3000)
    fleet = _fleet(trace, prof, SimConfig(roles={Role.BOTH: RoleShape(initial=2)}))
    fleet.run(1.0)
    fleet.scale_to(Role.BOTH, 3, 1.0)
    starting = [r for r in fleet.replicas if r.state is ReplicaState.STARTING]
    assert len(starting) == 1
    fleet.scale_to(Role.BOTH, 1, 2.0)
    assert starting[0].state is ReplicaState.GONE and starting[0].gone_t == 2.0
    draining = [r for r in fleet.replicas if r.state is ReplicaState.DRAINING]
    assert len(draining) == 1 and draining[0].outstanding == 2
    fleet.run(1e6)
    assert fleet.failed == 0
    assert draining[0].state is ReplicaState.GONE
    assert draining[0].gone_t == pytest.approx(float(np.max(fleet.e2e)), rel=1e-9)
    gpu = fleet.gpu_seconds(1e6)[Role.BOTH]
    assert gpu == pytest.approx(4 * (1e6 + draining[0].gone_t + 1.0))


def test_disaggregated_handoff_adds_kv_transfer_time() -> None:
    prof = LinearProfile(transfer_per_token=2e-4)
    cfg = SimConfig(mode=Mode.DISAGGREGATED,
                    roles={Role.PREFILL: RoleShape(initial=1), Role.DECODE: RoleShape(initial=1)})
    trace = make_trace([0.0, 100.0], 3000, 50)
    res = simulate(trace, prof, cfg, policy_from_string("static:prefill=1,decode=1"))
    expected = prof.prefill_time_s(3000) + prof.kv_transfer_s(3000)
    assert np.allclose(res.ttft, expected, rtol=1e-9)
    assert np.allclose(res.itl, prof.decode_step_s(1, 0), rtol=0.02)


def test_least_outstanding_router_spreads_load() -> None:
    prof = LinearProfile()
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=4)})
    trace = make_trace([0.0] * 8, 100, 1000)
    fleet = _fleet(trace, prof, cfg)
    fleet.run(0.0)
    assert sorted(r.outstanding for r in fleet.replicas) == [2, 2, 2, 2]


def test_prefix_aware_routing_reduces_prefill_on_repeated_prefixes() -> None:
    # the prefix cache of a replica holds ≈ 117 blocks of 512 tokens: about 16 conversations' prefixes
    prof = LinearProfile(kv_capacity_tokens=60_000)
    rng = np.random.default_rng(3)
    n = 600
    arrivals = np.cumsum(rng.exponential(0.5, n))
    # 64 conversations, each with a 6-block shared prefix plus one fresh block per turn
    convs = rng.integers(0, 64, n)
    hashes = [(*tuple(range(c * 100, c * 100 + 6)), 10000 + i) for i, c in enumerate(convs)]
    trace = make_trace(list(arrivals), 7 * 512, 20, hash_ids=hashes)
    computed = {}
    for router in RouterKind:
        cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=4)}, router=router)
        res = simulate(trace, prof, cfg, policy_from_string("static:4"))
        computed[router] = res.summary["prefill_tokens_computed"]
        assert res.summary["failed"] == 0
    floor = n * 512 + 64 * 6 * 512  # fresh block of every turn + each conversation's prefix once
    assert computed[RouterKind.PREFIX_AWARE] < 0.6 * computed[RouterKind.LEAST_OUTSTANDING]
    assert computed[RouterKind.PREFIX_AWARE] < 1.5 * floor
