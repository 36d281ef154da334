"""The ``dynamo-planner`` policy: NVIDIA Dynamo's real planner in the peers environment, behind our Policy protocol.

The peers environment (``make peers``) is built by the ``peers_env`` fixture when it is missing (about 4–5
minutes, download-bound; ``make test`` builds it first). Once it exists the replay test takes about 30 s, most of
it the planner's imports in the worker.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from autoscaler.catalog import load_profile
from autoscaler.core.types import Observation, Role, RoleObservation
from autoscaler.sim import scorecard as sc
from autoscaler.sim.peers import PeersUnavailable, peers_python, unavailable_policies
from autoscaler.sim.peers.dynamo_planner import DynamoPlannerPeer, planner_inputs
from autoscaler.sim.peers.env import PYTHON_ENV

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "llama2-70b/h100/tp4"


@pytest.fixture(scope="session")
def peers_env() -> Path:
    """The peers environment's python, installing it with ``make peers`` when it is missing."""
    try:
        return peers_python()
    except PeersUnavailable:
        subprocess.run(["make", "--no-print-directory", "peers"], cwd=ROOT, check=True, timeout=1800)
        return peers_python()


def _obs(now: float, replicas: dict[Role, tuple[int, int]], rate: float, isl: float, osl: float) -> Observation:
    roles = {
        role: RoleObservation(
            replicas=n, ready=ready, starting=n - ready, arrival_rate=rate, prompt_tokens_rate=rate * isl,
            generation_tokens_rate=rate * osl, ttft=0.3, itl=0.04,
        )
        for role, (n, ready) in replicas.items()
    }
    return Observation(time=now, roles=roles)


def test_missing_environment_names_make_peers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PYTHON_ENV, str(tmp_path / "no-such-python"))
    profile = load_profile(PROFILE)
    policy = DynamoPlannerPeer(profile)
    with pytest.raises(PeersUnavailable, match="make peers"):
        policy.initial_state(sc.build_spec(profile), 0.0)
    # the scorecard skips it with that note instead of failing
    notes = unavailable_policies(["slo", "dynamo-planner"])
    assert list(notes) == ["dynamo-planner"] and "make peers" in notes["dynamo-planner"]


def test_bench_skips_dynamo_planner_with_a_note(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PYTHON_ENV, str(tmp_path / "no-such-python"))
    from autoscaler.cli import main

    code = main(["bench", "--quick", "--policies", "static,dynamo-planner", "--jobs", "1", "--out", str(tmp_path)])
    assert code == 0
    report = (tmp_path / "scorecard.json").read_text()
    assert '"dynamo-planner"' in report and "make peers" in report  # the note, in meta.skipped
    assert '"policy": "static"' in report and '"policy": "dynamo-planner"' not in report


def test_planner_inputs_give_the_scorecard_budget_and_the_profile() -> None:
    profile = load_profile(PROFILE)
    msg = planner_inputs(profile, sc.build_spec(profile, ttft="1s", itl="100ms"), sla_scale=0.5)
    cfg = msg["config"]
    assert cfg["optimization_target"] == "sla" and cfg["mode"] == "disagg"
    assert cfg["max_gpu_budget"] == 2 * 200 * profile.gpus_per_replica
    assert cfg["ttft_ms"] == pytest.approx(500.0) and cfg["itl_ms"] == pytest.approx(50.0)
    # profiler points are the profile's own figures
    n, s = msg["prefill_fpms"][3]
    assert s == pytest.approx(profile.prefill_time_s(n))
    bs, kv, s = msg["decode_fpms"][5]
    assert s == pytest.approx(profile.decode_step_s(bs, kv / bs))
    assert msg["capabilities"]["decode"]["max_kv_tokens"] == profile.kv_capacity_tokens


def test_real_planner_scales_with_traffic(peers_env: Path) -> None:
    """Low, then ten times the traffic, then low again: the real planner's targets follow, sized by its
    regression on our profile (prefill: demand × prefill time of the mean prompt)."""
    profile = load_profile(PROFILE)
    spec = sc.build_spec(profile, ttft="1s", itl="100ms")
    policy = DynamoPlannerPeer(profile, predictor="constant")
    isl, osl = 2000.0, 200.0
    fleet = {Role.PREFILL: 2, Role.DECODE: 2}
    seen: list[tuple[float, dict[Role, int]]] = []
    try:
        state = policy.initial_state(spec, 1000.0)
        for k in range(1, 97):  # 24 minutes in 15 s steps: 8 throughput ticks of 180 s
            now = 1000.0 + 15.0 * k
            rate = 20.0 if 36 <= k < 72 else 2.0
            obs = _obs(now, {r: (n, n) for r, n in fleet.items()}, rate, isl, osl)
            decision, state = policy.decide(spec, obs, state, now)
            fleet = {r: int(decision.desired[r]) for r in fleet}
            seen.append((rate, dict(fleet)))
    finally:
        policy.close()
    assert policy.version.startswith("1.")
    assert "predicted" in state.reason  # its throughput scaling ran: the model was ready
    low_before, high, low_after = seen[35][1], seen[71][1], seen[-1][1]
    assert high[Role.PREFILL] > low_before[Role.PREFILL] and high[Role.DECODE] > low_before[Role.DECODE]
    assert low_after[Role.PREFILL] < high[Role.PREFILL] and low_after[Role.DECODE] < high[Role.DECODE]
    expected_prefill = math.ceil(20.0 * profile.prefill_time_s(isl))
    assert abs(high[Role.PREFILL] - expected_prefill) <= 1, (high, expected_prefill)


def test_traffic_window_is_offered_load() -> None:
    """Requests the planner is told about = prefills done + the prefill backlog's growth (its frontend counts
    requests started, not completed)."""
    from autoscaler.sim.peers.dynamo_planner import _traffic, backlog

    roles = {
        Role.PREFILL: RoleObservation(replicas=2, ready=2, arrival_rate=10.0, prompt_tokens_rate=12000.0,
                                      queue_depth=30.0, running=4.0),
        Role.DECODE: RoleObservation(replicas=2, ready=2, generation_tokens_rate=2000.0),
    }
    obs = Observation(time=0.0, roles=roles)
    assert backlog(obs) == 34.0
    window = _traffic(obs, 15.0, grown=34.0 - 4.0)
    assert window is not None
    assert window["num_req"] == pytest.approx(10.0 * 15.0 + 30.0)
    assert window["avg_isl"] == pytest.approx(1200.0) and window["avg_osl"] == pytest.approx(200.0)
