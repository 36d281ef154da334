"""The scorecard's arithmetic (table tests on hand-made sweeps), its report on a tiny grid, the policy
registry's core entries, and determinism of the controller run through the twin."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from autoscaler.catalog import load_profile
from autoscaler.core.types import Role
from autoscaler.errors import InputError
from autoscaler.sim import scorecard as sc
from autoscaler.sim.config import Mode, RoleShape, SimConfig
from autoscaler.sim.core_policies import CorePolicy
from autoscaler.sim.engine import simulate
from autoscaler.sim.grid import run_grid
from autoscaler.sim.policies import policy_from_string, policy_names
from autoscaler.sim.progress import Progress
from autoscaler.sim.traces import bundled_trace_path, load_trace


def _pts(*pairs: tuple[float, float]) -> list[sc.Point]:
    return [sc.Point("t", "p", float(k), g, a, 0.0, 60.0) for k, (g, a) in enumerate(pairs)]


@pytest.mark.parametrize(
    ("pairs", "level", "expected"),
    [
        # bracketed: linear between (10, 0.9) and (20, 1.0) → 0.99 at 19
        (((10.0, 0.90), (20.0, 1.00)), 0.99, 19.0),
        (((10.0, 0.90), (20.0, 1.00)), 0.95, 15.0),
        # the cheapest point already reaches the level
        (((10.0, 0.995), (20.0, 1.00)), 0.99, 10.0),
        # not reached
        (((10.0, 0.90), (20.0, 0.98)), 0.99, None),
        # a dearer point that does worse is off the envelope and ignored
        (((10.0, 0.90), (15.0, 0.85), (20.0, 1.00)), 0.95, 15.0),
        # order of the sweep does not matter
        (((20.0, 1.00), (10.0, 0.90)), 0.99, 19.0),
        # exactly at a point
        (((10.0, 0.90), (20.0, 0.99), (30.0, 1.0)), 0.99, 20.0),
    ],
)
def test_level_cost_interpolates_on_the_envelope(
    pairs: tuple[tuple[float, float], ...], level: float, expected: float | None
) -> None:
    got = sc.level_cost(_pts(*pairs), level)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("gpu_hours", "expected"),
    [(5.0, None), (10.0, 0.9), (15.0, 0.95), (20.0, 1.0), (50.0, 1.0)],
)
def test_attainment_at(gpu_hours: float, expected: float | None) -> None:
    got = sc.attainment_at(_pts((10.0, 0.9), (20.0, 1.0)), gpu_hours)
    assert got == (None if expected is None else pytest.approx(expected))


def test_summary_ratios_and_markdown_on_hand_made_points() -> None:
    pts = [
        sc.Point("tr", "oracle", 1.0, 10.0, 0.90, 10.0, 60.0),
        sc.Point("tr", "oracle", 1.5, 20.0, 1.00, 10.0, 60.0),
        sc.Point("tr", "slo", 0.8, 20.0, 0.90, 30.0, 60.0),
        sc.Point("tr", "slo", 0.5, 40.0, 1.00, 40.0, 60.0),
        sc.Point("tr", "static", 1.0, 30.0, 0.5, 0.0, 60.0),
    ]
    summary = sc.summarise(pts)
    rows = summary["tr"]
    assert rows["oracle"]["gpu_hours_99"] == pytest.approx(19.0)
    assert rows["slo"]["gpu_hours_99"] == pytest.approx(38.0)
    assert rows["slo"]["ratio_99"] == pytest.approx(2.0)
    assert rows["slo"]["gpu_hours_95"] == pytest.approx(30.0)
    assert rows["static"]["gpu_hours_99"] is None and rows["static"]["best_attainment"] == 0.5
    # at the oracle's 99 % budget (19 GPU-h) slo is below its cheapest point
    assert rows["slo"]["attainment_at_oracle_99"] is None
    md = sc.markdown(summary)
    assert "### tr" in md and "| static | not reached |" in md


def test_per_seed_level_cost_reads_each_seeds_own_curve() -> None:
    """Two seeds that land at different costs per knob: the seed-mean curve (the headline) charges the
    spread, the per-seed figure averages what each seed needed on its own curve."""

    def point(knob: float, seed: int, gpu_hours: float, attainment: float) -> sc.Point:
        return sc.Point("tr", "slo", knob, gpu_hours, attainment, 0.0, 60.0, seed=seed)

    pts = [
        # seed 0 reaches 95 % at 20 GPU-h (knob 2), seed 1 at 30 (knob 1)
        point(1.0, 0, 40.0, 0.99), point(2.0, 0, 20.0, 0.95), point(3.0, 0, 10.0, 0.80),
        point(1.0, 1, 30.0, 0.95), point(2.0, 1, 15.0, 0.85), point(3.0, 1, 10.0, 0.80),
    ]
    assert sc.per_seed_level_cost(pts, 0.95) == pytest.approx(25.0)
    # seed means: knob 1 (35, 0.97), knob 2 (17.5, 0.90) → 95 % at 17.5 + 17.5 · 5/7 = 30
    assert sc.level_cost(sc.seed_means(pts), 0.95) == pytest.approx(30.0)
    # a seed that never reaches the level: not reached
    assert sc.per_seed_level_cost(pts, 0.99) is None
    row = sc.summarise(pts)["tr"]["slo"]
    assert row["gpu_hours_95_per_seed"] == pytest.approx(25.0) and row["gpu_hours_99_per_seed"] is None
    assert "| not reached / 25.0 |" in sc.markdown(sc.summarise(pts))


def test_tiny_grid_report_structure(tmp_path: Path) -> None:
    scenario = sc.Scenario("tiny", str(bundled_trace_path("azure_conv")), rate_scale=1.0, end_s=180.0)
    items = [
        sc.GridItem(scenario, "slo", 0.8, "llama2-70b/h100/tp4"),
        sc.GridItem(scenario, "static", 1.0, "llama2-70b/h100/tp4"),
        sc.GridItem(scenario, "oracle", 0.97, "llama2-70b/h100/tp4"),
    ]
    points = run_grid(items, jobs=1)
    assert [p.policy for p in points] == ["slo", "static", "oracle"]
    for p in points:
        # scored: from one lead time (170 s) on; GPU-hours and duration cover that window only
        assert p.gpu_hours > 0 and 0.0 <= p.attainment <= 1.0 and 0.0 < p.duration_s < 180.0
    files = sc.write_report(points, tmp_path, meta={"test": True})
    data = json.loads(files["json"].read_text())
    assert set(data) == {"meta", "summary", "points"}
    assert set(data["summary"]["tiny"]) == {"slo", "static", "oracle"}
    row = data["summary"]["tiny"]["slo"]
    assert {"gpu_hours_99", "gpu_hours_95", "ratio_99", "ratio_95", "attainment_at_oracle_99",
            "actions_per_hour", "best_attainment", "points"} <= set(row)
    assert files["svg"].read_text().startswith("<svg")
    # two worker processes: the same points, in grid order, each reported as it finishes
    out = io.StringIO()
    parallel = run_grid(items, jobs=2, progress=Progress(len(items), stream=out))
    assert [(p.policy, p.gpu_hours) for p in parallel] == [(p.policy, p.gpu_hours) for p in points]
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("[3/3] tiny ") and lines[-1].endswith("done")
    # sharded runs merge back to the same points
    a = run_grid(items, jobs=1, shard=(0, 2))
    b = run_grid(items, jobs=1, shard=(1, 2))
    assert sorted((p.policy, p.gpu_hours) for p in a + b) == sorted((p.policy, p.gpu_hours) for p in points)
    # and through files: the merged report keeps every point and each shard's meta
    shard_files = [
        sc.write_report(part, tmp_path / f"s{i}", meta={"shard": f"{i}/2"})["json"] for i, part in enumerate((a, b))
    ]
    merged = sc.merge_points(shard_files)
    assert sorted((p.policy, p.gpu_hours) for p in merged) == sorted((p.policy, p.gpu_hours) for p in points)
    assert sc.merge_meta(shard_files) == {
        "merged": [{"file": "scorecard.json", "shard": "0/2"}, {"file": "scorecard.json", "shard": "1/2"}]
    }
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"bad\.json"):
        sc.merge_meta([tmp_path / "bad.json"])


@pytest.mark.parametrize(
    "text", ["slo", "slo:0.6", "slo-noforecast", "hpa-queue:2", "hpa-kv:0.5", "keda:5", "llm-d:1", "dynamo-planner",
             "kpa:16"],
)
def test_registry_resolves_core_policies(text: str) -> None:
    policy = policy_from_string(text)
    assert isinstance(policy, CorePolicy)
    config = SimConfig(
        mode=Mode.DISAGGREGATED, roles={Role.PREFILL: RoleShape(2, 1, 8), Role.DECODE: RoleShape(2, 1, 8)}
    )
    bound, spec = policy.bind(load_profile("llama2-70b/h100/tp4"), config)
    assert bound.name == text
    assert spec.roles.prefill is not None and spec.roles.prefill.max_replicas == 8
    assert spec.slo.ttft.target_s == pytest.approx(1.0)


def test_llmd_is_a_deprecated_alias_of_llm_d() -> None:
    policy = policy_from_string("llmd:1")
    assert isinstance(policy, CorePolicy) and policy.name == "llm-d:1"
    assert not any(usage.startswith("llmd") for usage in policy_names())


@pytest.mark.parametrize("text", ["slo:abc", "slo:-1", "kpa:0", "oracle", "nosuch"])
def test_registry_rejects_bad_policy_text(text: str) -> None:
    with pytest.raises(InputError) as err:
        policy_from_string(text)
    assert err.value.source == "--policy"


def test_controller_through_the_twin_is_deterministic() -> None:
    profile = load_profile("llama2-70b/h100/tp4")
    trace = load_trace(str(bundled_trace_path("azure_conv")), rate_scale=2.0, end_s=240.0, seed=0)
    config = SimConfig(
        mode=Mode.DISAGGREGATED, roles={Role.PREFILL: RoleShape(1, 1, 20), Role.DECODE: RoleShape(1, 1, 20)}
    )
    runs = []
    for _ in range(2):
        policy, spec = policy_from_string("slo").bind(profile, config)  # type: ignore[attr-defined]
        result = simulate(trace, profile, config, policy, spec, seed=3)
        runs.append((result.to_json(), result.decisions))
    assert runs[0] == runs[1]
    # and it acted: starting from one replica per role under load, it scaled up
    data = json.loads(runs[0][0])
    assert max(v for v in data["timeseries"]["replicas.prefill"] if v is not None) > 1


def test_oracle_refinement_on_the_twin_repairs_an_undersized_schedule() -> None:
    """Started from half the model's schedule, the per-window search on the twin adds replicas where
    windows miss, and its final run attains more than the start."""
    from autoscaler.sim.config import Mode, RoleShape, SimConfig
    from autoscaler.sim.engine import simulate
    from autoscaler.sim.oracle import OraclePolicy, refine_on_twin

    profile = load_profile("llama2-70b/h100/tp4")
    scenario = sc.Scenario("tiny", str(bundled_trace_path("azure_conv")), rate_scale=2.0, end_s=600.0)
    trace = sc._load(scenario, 0)
    spec = sc.build_spec(profile)
    config = SimConfig(
        mode=Mode.DISAGGREGATED, roles={Role.PREFILL: RoleShape(2, 1, 200), Role.DECODE: RoleShape(2, 1, 200)}
    )
    runs = []

    def run(pol: object) -> object:
        r = simulate(trace, profile, config, pol, spec)
        runs.append(r)
        return r

    oracle = OraclePolicy(trace, profile, margin=0.5)
    last = refine_on_twin(oracle, run, 0.99, 1.0, 0.1, passes=2)
    assert last is runs[-1] and len(runs) >= 2
    first, final = runs[0].summary["slo_attainment"]["both"], last.summary["slo_attainment"]["both"]
    assert final > first
    assert int(oracle.adjust[Role.PREFILL].sum()) > 0  # it had to add prefill replicas


def test_warmup_is_not_scored() -> None:
    """Attainment counts only requests arriving after the warm-up (one lead time)."""
    import numpy as np

    class R:
        arrival = np.array([0.0, 10.0, 200.0, 300.0])
        ttft = np.array([5.0, np.inf, 0.5, 2.0])
        itl = np.array([0.05, np.nan, np.nan, 0.05])

    assert sc.scored_attainment(R(), 1.0, 0.1, 170.0) == pytest.approx(0.5)
    assert sc.scored_attainment(R(), 1.0, 0.1, 0.0) == pytest.approx(0.25)
    assert sc.scored_attainment(R(), 1.0, 0.1, 1e6) == 0.0


def test_default_scenarios_ground_the_code_trace_ttft() -> None:
    """Azure code's TTFT target is 2 s (its p99 prompt needs ~0.84 s of prefill alone); the others 1 s."""
    targets = {s.name: (s.ttft_s, s.itl_s) for s in sc.default_scenarios()}
    assert targets == {"azure_conv": (1.0, 0.1), "azure_code": (2.0, 0.1), "servegen_day": (1.0, 0.1)}
    profile = load_profile("llama2-70b/h100/tp4")
    assert 0.5 < profile.prefill_time_s(7436) < 1.0 < 2.0


def test_every_policy_starts_from_a_fleet_that_holds_the_first_lead_time() -> None:
    """The start fleet is the model's first need times the smallest margin that meets the SLO for 99 % of
    the first lead time's requests on the twin: no policy starts behind with a backlog it could not avoid."""
    import numpy as np

    from autoscaler.core.baselines import StaticPolicy
    from autoscaler.sim.config import Mode, RoleShape, SimConfig
    from autoscaler.sim.engine import simulate

    profile = load_profile("llama2-70b/h100/tp4")
    scenario = sc.default_scenarios(quick=True)[0]
    trace = sc._load(scenario, 0)
    spec = sc.build_spec(profile)
    first = sc.OracleStart.first_need(trace, profile, spec)
    start = sc.start_fleet(scenario, 0, trace, profile, spec)
    assert all(start[r] >= first[r] for r in first)
    config = SimConfig(
        mode=Mode.DISAGGREGATED,
        roles={r: RoleShape(initial=n, min_replicas=1, max_replicas=200) for r, n in start.items()},
    )
    result = simulate(trace, profile, config, StaticPolicy(start), spec)
    lead = profile.cold_start_s + spec.control_interval_s
    early = np.asarray(result.arrival) <= lead
    ok = (np.asarray(result.ttft)[early] <= 1.0) & (np.nan_to_num(np.asarray(result.itl)[early]) <= 0.1)
    assert ok.mean() >= 0.99 or start == {r: max(1, int(np.ceil(n * sc.OracleStart.MARGINS[-1])))
                                          for r, n in first.items()}


def test_points_of_several_seeds_are_averaged_per_knob_before_the_levels_are_read() -> None:
    pts = [
        sc.Point("tr", "slo", 0.5, 40.0, 1.00, 30.0, 60.0, seed=0),
        sc.Point("tr", "slo", 0.5, 44.0, 0.96, 50.0, 60.0, seed=1),
        sc.Point("tr", "slo", 1.0, 20.0, 0.90, 10.0, 60.0, seed=0),
        sc.Point("tr", "slo", 1.0, 22.0, 0.92, 20.0, 60.0, seed=1),
    ]
    means = {p.knob: p for p in sc.seed_means(pts)}
    assert means[0.5].gpu_hours == 42.0 and means[0.5].attainment == 0.98
    assert means[0.5].actions_per_hour == 40.0
    assert means[0.5].extra["seeds"] == [[0, 40.0, 1.00], [1, 44.0, 0.96]]
    row = sc.summarise(pts)["tr"]["slo"]
    # 95 % lies between the means (21, 0.91) and (42, 0.98): 21 + 21 · 4/7 = 33
    assert row["gpu_hours_95"] == pytest.approx(33.0)
    assert row["best_attainment"] == 0.98


def test_grid_repeats_every_item_per_seed_and_rejects_no_seeds() -> None:
    scen = [sc.Scenario("a", "a.csv")]
    items = sc.grid(scen, ["static"], "llama2-70b/h100/tp4", quick=True, seed=3, seeds=2)
    assert sorted({i.seed for i in items}) == [3, 4]
    assert len(items) == 2 * len(sc.QUICK_SWEEPS["static"])
    with pytest.raises(InputError, match="--seeds"):
        sc.grid(scen, ["static"], "llama2-70b/h100/tp4", seeds=0)


def test_a_synthetic_trace_is_drawn_per_seed_not_cached_across_seeds() -> None:
    scen = sc.Scenario(
        "env", str(bundled_trace_path("servegen_m_small")), rate_scale=0.003, time_scale=1 / 24, end_s=3600.0
    )
    a, b = sc._load(scen, 0), sc._load(scen, 1)
    assert len(a.arrivals_s) > 100
    assert list(a.arrivals_s[:50]) != list(b.arrivals_s[:50])
    assert sc._load(scen, 0) is a
