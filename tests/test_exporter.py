"""The exporter's /metrics: scraped over HTTP, parsed with prometheus_client's parser, compared to the board."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.adapters.board import MemoryDecisionBoard
from autoscaler.adapters.exporter import Exporter
from autoscaler.core.types import ReasonCode, Role, RoleObservation
from tests.fixtures.decisions import make_record


@pytest.fixture
async def exporter() -> AsyncIterator[tuple[Exporter, MemoryDecisionBoard]]:
    board = MemoryDecisionBoard()
    exp = Exporter(board, host="127.0.0.1", port=0)
    await exp.start()
    try:
        yield exp, board
    finally:
        await exp.stop()


async def scrape(exp: Exporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{exp.port}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    out = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (f"inference_autoscaler_{name}", tuple(sorted(labels.items())))


async def test_scrape_matches_the_board(exporter: tuple[Exporter, MemoryDecisionBoard]) -> None:
    exp, board = exporter
    board.publish(make_record("llama", time=1000.0, reason=ReasonCode.SLO_SCALE_UP))
    board.publish(make_record("llama", time=1000.0, reason=ReasonCode.STEADY))
    board.publish(make_record("mistral", time=1000.0, cost=None, desired={Role.BOTH: 2},
                              roles={Role.BOTH: RoleObservation(replicas=1, ready=1)}))
    exp.observe_reconcile(0.02)
    exp.observe_reconcile(3.0)
    exp.count_error("prometheus")
    exp.count_error("prometheus")
    exp.set_leader(True)
    m = await scrape(exp)
    ia = {"namespace": "serving", "inferenceautoscaler": "llama", "pool": "llama-pool"}
    assert m[key("desired_replicas", **ia, role="prefill")] == 4
    assert m[key("desired_replicas", **ia, role="decode")] == 6
    assert m[key("current_replicas", **ia, role="prefill")] == 3
    assert m[key("ready_replicas", **ia, role="decode")] == 6
    assert m[key("observed_ttft_seconds", **ia, role="prefill")] == 1.5
    assert m[key("observed_itl_seconds", **ia, role="decode")] == 0.04
    assert m[key("ttft_slo_ratio", **ia, role="prefill")] == 1.5
    assert m[key("itl_slo_ratio", **ia, role="decode")] == pytest.approx(0.5)
    assert m[key("queue_per_replica", **ia, role="prefill")] == 4
    assert m[key("predicted_ttft_seconds", **ia)] == 0.8
    assert m[key("predicted_itl_seconds", **ia)] == 0.05
    assert m[key("cost_per_hour", **ia)] == 96
    # Unknown values are absent, never 0.
    assert key("observed_itl_seconds", **ia, role="prefill") not in m
    assert key("itl_slo_ratio", **ia, role="prefill") not in m
    mistral = {"namespace": "serving", "inferenceautoscaler": "mistral", "pool": "mistral-pool"}
    assert key("cost_per_hour", **mistral) not in m
    assert m[key("desired_replicas", **mistral, role="both")] == 2
    assert m[key("decisions_total", reason="SLOScaleUp")] == 1
    assert m[key("decisions_total", reason="Steady")] == 2
    assert m[key("errors_total", kind="prometheus")] == 2
    assert m[key("leader")] == 1
    assert m[key("reconcile_duration_seconds_count")] == 2
    assert m[key("reconcile_duration_seconds_sum")] == pytest.approx(3.02)
    assert m[key("reconcile_duration_seconds_bucket", le="0.025")] == 1
    assert m[key("reconcile_duration_seconds_bucket", le="+Inf")] == 2

    board.remove("serving", "llama")
    exp.set_leader(False)
    m = await scrape(exp)
    assert key("desired_replicas", **ia, role="prefill") not in m
    assert m[key("leader")] == 0
    assert m[key("decisions_total", reason="Steady")] == 2  # counters never go back
