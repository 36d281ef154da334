"""Golden digest of the decision core: refactors of the policies must keep decisions bit-identical.

A fixed set of short scorecard runs (two scenarios × two seeds × three policies) and the observation stream
of ``bench/decide_speed.py`` are fed through the policies; every :class:`Decision` (its ``repr``: replicas,
reasons with their messages, predictions, forecast, cost) and every run's scored figures are hashed with
sha256. The digests live in ``tests/data/golden/decisions.json``.

To re-record after an intended behaviour change (never for a refactor)::

    GOLDEN_RECORD=1 python -m pytest tests/test_golden_decisions.py
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import pytest

from autoscaler.catalog import load_profile
from autoscaler.core.types import Decision, Observation, Role, RoleObservation
from autoscaler.sim import scorecard
from autoscaler.sim.engine import simulate
from autoscaler.sim.traces import bundled_trace_path

DIGESTS = Path(__file__).parent / "data" / "golden" / "decisions.json"
PROFILE = "llama2-70b/h100/tp4"

#: short segments of two bundled traces (about twenty control intervals past the first lead time)
SCENARIOS = (
    scorecard.Scenario("azure_conv", str(bundled_trace_path("azure_conv")), rate_scale=8.0, end_s=600.0),
    scorecard.Scenario(
        "azure_code", str(bundled_trace_path("azure_code")), rate_scale=20.0, ttft_s=2.0, end_s=600.0
    ),
)
POLICIES = (("slo", 0.8), ("static", 1.2), ("hpa-queue", 2.0))
SEEDS = (0, 1)


class Recorder:
    """Wraps a policy and hashes every decision it returns."""

    def __init__(self, inner: Any, sink: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.sink = sink

    def initial_state(self, spec: Any, now: float) -> Any:
        return self.inner.initial_state(spec, now)

    def decide(self, spec: Any, observation: Observation, state: Any, now: float) -> tuple[Decision, Any]:
        decision, state = self.inner.decide(spec, observation, state, now)
        self.sink.update(f"{now!r} {decision!r}\n".encode())
        return decision, state


def _scorecard_digest(sc: scorecard.Scenario, policy: str, knob: float, seed: int) -> str:
    """The digest of one scorecard item run as :func:`scorecard.run_item` runs it."""
    item = scorecard.GridItem(sc, policy, knob, PROFILE, seed)
    trace = scorecard._load(sc, seed)
    profile = load_profile(PROFILE)
    spec = scorecard.build_spec(
        profile,
        season_s=sc.season_s,
        forecast="auto",
        ttft=f"{sc.ttft_s * 1000:g}ms",
        itl=f"{sc.itl_s * 1000:g}ms",
    )
    sink = hashlib.sha256()
    pol = Recorder(scorecard.make_policy(item, trace, profile, spec), sink)
    start = scorecard.start_fleet(sc, seed, trace, profile, spec)
    scored_from = max(scorecard.warmup_s(profile, spec), sc.history_s)
    config = scorecard.bench_config(spec, start, score_from_s=scored_from)
    result = simulate(trace, profile, config, pol, spec, seed=seed)
    scored = result.summary["scored"]
    attainment = scorecard.scored_attainment(result, config.slo_ttft_s, config.slo_itl_s, scored_from)
    sink.update(f"{start!r} {scored['gpu_hours']!r} {scored['scaling_actions']!r} {attainment!r}".encode())
    return sink.hexdigest()


def _speed_observation(t: float, rng: random.Random) -> Observation:
    """``bench/decide_speed.py``'s observation at ``t`` (a sine of load with noise)."""
    rate = 40.0 * (1.0 + 0.5 * math.sin(2 * math.pi * t / 3600.0)) * rng.uniform(0.9, 1.1)
    roles = {
        role: RoleObservation(
            replicas=20, ready=20, starting=0, ttft=0.5, itl=0.05, queue_depth=1.0, running=300.0,
            kv_utilization=0.5, arrival_rate=rate, prompt_tokens_rate=rate * 1100.0,
            generation_tokens_rate=rate * 210.0, reporting=20,
        )
        for role in (Role.PREFILL, Role.DECODE)
    }
    return Observation(time=t, roles=roles, source_ok=True, error="")


def _speed_digest(step_reserve: bool, steps: int = 400) -> str:
    """The digest of the decide-speed stream through the SLO policy (step reserve on or off)."""
    profile = load_profile(PROFILE)
    spec = scorecard.build_spec(profile, season_s=3600.0)
    item = scorecard.GridItem(SCENARIOS[0], "slo", 1.0, PROFILE)
    slo_class = type(scorecard.make_policy(item, None, profile, spec))
    slo = slo_class(profile)
    policy = slo if step_reserve else _no_step_reserve(slo, profile)
    rng = random.Random(7)
    sink = hashlib.sha256()
    state = policy.initial_state(spec, 0.0)
    for k in range(steps):
        t = 15.0 * k
        decision, state = policy.decide(spec, _speed_observation(t, rng), state, t)
        sink.update(f"{t!r} {decision!r}\n".encode())
    return sink.hexdigest()


def _no_step_reserve(slo: Any, profile: Any) -> Any:
    tuning = slo.tuning
    if hasattr(tuning, "decode_step_window_leads"):
        tuning = dataclasses.replace(tuning, decode_step_window_leads=0.0)
    else:  # grouped tuning
        tuning = dataclasses.replace(
            tuning, reserve=dataclasses.replace(tuning.reserve, decode_step_window_leads=0.0)
        )
    return type(slo)(profile, tuning=tuning)


def _all_digests() -> dict[str, str]:
    out = {}
    for sc in SCENARIOS:
        for policy, knob in POLICIES:
            for seed in SEEDS:
                out[f"scorecard/{sc.name}/{policy}@{knob}/seed{seed}"] = _scorecard_digest(sc, policy, knob, seed)
    out["decide_speed/step-reserve-on"] = _speed_digest(True)
    out["decide_speed/step-reserve-off"] = _speed_digest(False)
    return out


def test_decisions_match_the_golden_digests() -> None:
    got = _all_digests()
    if os.environ.get("GOLDEN_RECORD"):
        DIGESTS.parent.mkdir(parents=True, exist_ok=True)
        DIGESTS.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip("golden digests recorded")
    want = json.loads(DIGESTS.read_text())
    assert got == want
