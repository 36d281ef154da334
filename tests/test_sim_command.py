"""The ``simulate`` command: flags, errors, reports and atomic output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from autoscaler.core.types import Role
from autoscaler.errors import InputError
from autoscaler.sim.command import register, write_atomic
from autoscaler.sim.config import RoleShape, SimConfig
from autoscaler.sim.engine import simulate
from autoscaler.sim.policies import policy_from_string
from autoscaler.sim.report import render_html, summary_rows
from tests.fixtures.sim_doubles import LinearProfile, poisson_trace


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


@pytest.mark.parametrize(
    ("argv", "source", "message"),
    [
        (["--policy", "nope"], "--policy", "unknown policy"),
        (["--interval", "fast"], "--interval", "expected a duration"),
        (["--slo-ttft", "0s"], "--slo-ttft", "must be > 0"),
        (["--replicas", "lots"], "--replicas", "expected N"),
        (["--replicas", "decode=3"], "--replicas", "not part of aggregated"),
        (["--replicas", "100"], "--replicas", "outside"),
        (["--rate-scale", "0"], "--rate-scale", "must be > 0"),
    ],
)
def test_bad_flags_raise_input_errors_naming_the_flag(argv: list[str], source: str, message: str) -> None:
    args = _parse(*argv)
    with pytest.raises(InputError, match=message) as info:
        args.handler(args)
    assert info.value.source == source


def _result():
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=1, max_replicas=6)})
    return simulate(poisson_trace(3.0, 400, 600, 80, seed=1), LinearProfile(), cfg,
                    policy_from_string("reactive:target=1"))


def test_html_report_is_self_contained_with_plots() -> None:
    res = _result()
    page = render_html(res)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 5
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "SLO attainment both" in page and "polyline" in page
    labels = [k for k, _ in summary_rows(res)]
    assert "GPU-hours" in labels and "scaling actions" in labels


def test_write_atomic_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_atomic(target, "{}\n")
    assert target.read_text() == "{}\n"

    with pytest.raises(InputError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "x.json", "{}")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(TypeError):
        write_atomic(target, 42)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert target.read_text() == "{}\n"


def test_json_results_round_trip() -> None:
    res = _result()
    data = json.loads(res.to_json())
    assert data["summary"]["requests"] == res.ttft.size
    assert set(data["timeseries"]) >= {"t", "arrival_rate", "replicas.both", "observed_ttft", "true_itl"}


def test_simulate_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("autoscaler.sim.traces")
    csv = tmp_path / "t.csv"
    csv.write_text("timestamp_s,input_tokens,output_tokens\n" + "".join(
        f"{i * 0.5},{500 + i % 7},{50 + i % 5}\n" for i in range(400)))
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    args = _parse("--trace", str(csv), "--profile", "llama2-70b/h100/tp4", "--policy", "static:2",
                  "--replicas", "2", "--json", str(out_json), "--html", str(out_html))
    assert args.handler(args) == 0
    assert json.loads(out_json.read_text())["summary"]["requests"] == 400
    assert "<svg" in out_html.read_text()
    assert "SLO attainment both" in capsys.readouterr().out
