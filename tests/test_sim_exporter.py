"""The exporter serves real vLLM-format Prometheus text whose values match the twin."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.core.types import Role
from autoscaler.sim.buckets import TTFT_BUCKETS
from autoscaler.sim.config import RoleShape, SimConfig
from autoscaler.sim.engine import Simulation
from autoscaler.sim.exporter import SimExporter
from autoscaler.sim.policies import policy_from_string
from tests.fixtures.sim_doubles import LinearProfile, poisson_trace


def _sim() -> Simulation:
    cfg = SimConfig(roles={Role.BOTH: RoleShape(initial=3)})
    return Simulation(poisson_trace(4.0, 600, 700, 120, seed=4), LinearProfile(model="Llama-Test"), cfg,
                      policy_from_string("static:3"))


async def test_metrics_parse_and_match_the_twin(tmp_path) -> None:
    sim = _sim()
    exporter = SimExporter(sim, speed=None)
    port = await exporter.start()
    try:
        exporter.advance_to(300.0)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/targets") as resp:
                groups = await resp.json()
            assert len(groups) == 3
            for group in groups:
                assert group["targets"] == [f"127.0.0.1:{port}"]
                path = group["labels"]["__metrics_path__"]
                async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    text = await resp.text()
                rep = next(r for r in sim.fleet.replicas if r.name == group["labels"]["replica"])
                families = {f.name: f for f in text_string_to_metric_families(text)}
                samples = {(s.name, s.labels.get("le")): s for f in families.values() for s in f.samples}
                assert all(s.labels["model_name"] == "Llama-Test" for f in families.values() for s in f.samples)
                assert families["vllm:time_to_first_token_seconds"].type == "histogram"
                assert samples[("vllm:time_to_first_token_seconds_count", None)].value == rep.ttft_n
                assert samples[("vllm:time_to_first_token_seconds_sum", None)].value == pytest.approx(rep.ttft_sum)
                cum = 0
                for le, c in zip(TTFT_BUCKETS, rep.ttft_counts, strict=False):
                    cum += c
                    assert samples[("vllm:time_to_first_token_seconds_bucket", repr(le))].value == cum
                assert samples[("vllm:time_to_first_token_seconds_bucket", "+Inf")].value == rep.ttft_n
                assert samples[("vllm:inter_token_latency_seconds_count", None)].value == rep.itl_n
                assert samples[("vllm:generation_tokens_total", None)].value == rep.gen_tokens
                assert samples[("vllm:prompt_tokens_total", None)].value == rep.prompt_tokens
                assert samples[("vllm:request_success_total", None)].value == rep.success
                assert samples[("vllm:num_requests_waiting", None)].value == len(rep.waiting)
                assert samples[("vllm:num_requests_running", None)].value == rep.num_running()
                assert 0.0 <= samples[("vllm:kv_cache_usage_perc", None)].value <= 1.0
                assert rep.ttft_n > 0
            async with session.get(f"http://127.0.0.1:{port}/metrics/both-999") as resp:
                assert resp.status == 404
        exporter.write_file_sd(tmp_path / "targets.json")
        assert len(json.loads((tmp_path / "targets.json").read_text())) == 3
    finally:
        await exporter.stop()


async def test_background_ticker_advances_in_accelerated_time() -> None:
    sim = _sim()
    exporter = SimExporter(sim, speed=600.0, tick_s=0.01)
    await exporter.start()
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if sim.now > 5.0:
                break
        assert sim.now > 5.0
    finally:
        await exporter.stop()
    assert exporter._task is None
