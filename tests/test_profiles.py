"""Measured performance profiles: fidelity, monotonicity, KV capacity, prices, errors."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.catalog import (
    gpu_prices,
    leave_one_out,
    load_profile,
    load_profile_csv,
    profile_names,
)
from autoscaler.catalog.profiles import DATA_DIR
from autoscaler.core.profile import PerformanceProfile
from autoscaler.errors import InputError

SPLITWISE = DATA_DIR / "splitwise_sim_perf_model.csv"
HEADER = (
    "model,hardware,prompt_size,batch_size,token_size,peak_power,average_power,prompt_time,token_time,"
    "e2e_time,tensor_parallel\n"
)


def raw_medians(name: str) -> tuple[dict[float, float], dict[float, float], dict[float, float]]:
    """Independently recompute the measured medians (seconds) straight from the CSV."""
    model, gpu, tp = name.split("/")
    if model == "llama2-70b":
        path, units = SPLITWISE, "ms"
        hw = {"a100": "a100-80gb", "h100": "h100-80gb", "h100-pcap": "h100-80gb-pcap"}[gpu]
        keep = lambda r: r["model"] == "llama2-70b" and r["hardware"] == hw and r["tensor_parallel"] == tp[2:]  # noqa: E731
    else:
        stem = {"llama3.1-8b": "Llama-3.1-8B", "llama3.2-3b": "Llama-3.2-3B"}[model]
        path, units = DATA_DIR / f"sageserve_{stem}-tp-{tp[2:]}.csv", "s"
        keep = lambda r: True  # noqa: E731
    prefill, batch, context = defaultdict(list), defaultdict(list), defaultdict(list)
    with path.open() as handle:
        for r in csv.DictReader(handle):
            if not keep(r):
                continue
            p, b, t = int(r["prompt_size"]), int(r["batch_size"]), int(r["token_size"])
            pt, tt = float(r["prompt_time"]), float(r["token_time"])
            prompt_s, step_s = (pt / 1e3, tt / 1e3) if units == "ms" else (pt, tt / t)
            if units == "ms" or b == 1:
                prefill[p * b].append(prompt_s)
            if p == 512 and t == 128:
                batch[b].append(step_s)
            if b == 1:
                context[p + t / 2].append(step_s)
    med = lambda d: {k: statistics.median(v) for k, v in d.items()}  # noqa: E731
    return med(prefill), med(batch), med(context)


@pytest.mark.parametrize("name", profile_names())
def test_profile_reproduces_measured_medians(name: str) -> None:
    as_protocol: PerformanceProfile = load_profile(
        name
    )  # mypy checks the protocol; the loop checks at run time
    for member in (*PerformanceProfile.__annotations__, "prefill_time_s", "decode_step_s", "kv_transfer_s"):
        assert hasattr(as_protocol, member), member
    profile = load_profile(name)
    prefill, batch, context = raw_medians(name)
    dropped_prefill = {x for x, _ in profile.prefill_curve.dropped}
    dropped_batch = {x for x, _ in profile.decode_batch_curve.dropped}
    for tokens, seconds in prefill.items():
        if tokens in dropped_prefill:
            assert any(f"{tokens:g} tokens" in n for n in profile.extrapolation_notes)
        else:
            assert profile.prefill_time_s(tokens) == pytest.approx(seconds, rel=0.02), tokens
    for size, seconds in batch.items():
        if size in dropped_batch:
            assert any(f"{size:g} batch" in n for n in profile.extrapolation_notes)
        else:
            assert profile.decode_step_s(size, profile.reference_context_tokens) == pytest.approx(
                seconds, rel=0.02
            )
    # The context axis is flat within noise and fitted isotonically: points it moves are reported, and the
    # fit stays within the measurement noise (a few per cent) of every measured median.
    moved = {x for x, _ in profile.decode_context_curve.dropped}
    for ctx, seconds in context.items():
        got = profile.decode_step_s(1, ctx)
        tolerance = 0.07 if ctx in moved else 0.02
        assert got == pytest.approx(seconds, rel=tolerance), ctx
    if moved:
        assert any("isotonic" in n for n in profile.extrapolation_notes)


@pytest.mark.parametrize("name", profile_names())
def test_notes_name_every_extrapolation(name: str) -> None:
    profile = load_profile(name)
    text = " | ".join(profile.extrapolation_notes)
    for phrase in (
        "prefill above",
        "decode batch above",
        "decode context above",
        "off the measured axes",
        "KV transfer above",
    ):
        assert phrase in text
    # beyond the largest batch: linear continuation of the last two kept points
    b = profile.decode_batch_curve
    slope = (b.ys[-1] - b.ys[-2]) / (b.xs[-1] - b.xs[-2])
    ref = profile.reference_context_tokens
    assert profile.decode_step_s(2 * b.x_max, ref) == pytest.approx(b.ys[-1] + slope * b.x_max)


def test_known_values_from_the_readme() -> None:
    # README key medians: Llama2-70B H100 TP4 prefill 2048 tokens 201 ms, decode bs1/bs32 29.4/36.9 ms
    h100 = load_profile("llama2-70b/h100/tp4")
    assert h100.prefill_time_s(2048) == pytest.approx(0.201, rel=0.01)
    assert h100.decode_step_s(32, 576) == pytest.approx(0.0369, rel=0.01)
    # Llama-3.1-8B A100 TP2: prefill 8k 542 ms, decode bs8 10.2 ms (SageServe's seconds-based units)
    small = load_profile("llama3.1-8b/a100/tp2")
    assert small.prefill_time_s(8192) == pytest.approx(0.542, rel=0.01)
    assert small.decode_step_s(8, 576) == pytest.approx(0.0102, rel=0.01)


PROFILE = st.sampled_from(profile_names())


@settings(max_examples=60, deadline=None)
@given(PROFILE, st.floats(1, 60_000), st.floats(1, 60_000))
def test_prefill_monotone(name: str, a: float, b: float) -> None:
    p = load_profile(name)
    lo, hi = sorted((a, b))
    assert 0 <= p.prefill_time_s(lo) <= p.prefill_time_s(hi)


@settings(max_examples=60, deadline=None)
@given(PROFILE, st.floats(1, 256), st.floats(1, 256), st.floats(1, 32_000), st.floats(1, 32_000))
def test_decode_monotone_in_batch_and_context(name: str, b1: float, b2: float, c1: float, c2: float) -> None:
    p = load_profile(name)
    blo, bhi = sorted((b1, b2))
    clo, chi = sorted((c1, c2))
    assert 0 < p.decode_step_s(blo, clo) <= p.decode_step_s(bhi, clo)
    assert p.decode_step_s(blo, clo) <= p.decode_step_s(blo, chi)


@settings(max_examples=60, deadline=None)
@given(PROFILE, st.floats(0, 200_000), st.floats(0, 200_000))
def test_kv_transfer_monotone(name: str, a: float, b: float) -> None:
    p = load_profile(name)
    lo, hi = sorted((a, b))
    assert 0 <= p.kv_transfer_s(lo) <= p.kv_transfer_s(hi)


def test_kv_transfer_units_and_links() -> None:
    inter = load_profile("llama2-70b/h100/tp4")
    intra = load_profile("llama2-70b/h100/tp4", kv_link="intra-node")
    assert inter.kv_transfer_s(0) == 0.0
    # 2048 tokens × 320 KiB / 4 ranks = 168 MB per GPU: beyond the 134 MB measured message → bandwidth rule
    per_gpu = 2048 * inter.kv_bytes_per_token / 4
    assert per_gpu > inter.kv_transfer_curve.x_max
    curve = inter.kv_transfer_curve
    expected = curve.ys[-1] + (per_gpu - curve.x_max) / inter.kv_bandwidth_bytes_per_s
    assert inter.kv_transfer_s(2048) == pytest.approx(expected)
    # NVLink inside a node is much faster than InfiniBand between nodes
    assert intra.kv_transfer_s(2048) < inter.kv_transfer_s(2048) / 3
    # bandwidths implied by Vidur's largest message (2 bytes per float16 element): tens to hundreds of GB/s
    assert 10e9 < inter.kv_bandwidth_bytes_per_s < 200e9
    assert 100e9 < intra.kv_bandwidth_bytes_per_s < 1500e9


def test_kv_capacity_from_named_inputs() -> None:
    p = load_profile("llama2-70b/h100/tp4")
    # Llama2-70B uses GQA: 80 layers × 8 KV heads × 128 dims × 2 (K, V) × 2 bytes
    assert p.kv_bytes_per_token == 80 * 8 * 128 * 2 * 2
    assert p.gpus_per_replica == 4 and p.gpu_memory_utilization == 0.9
    usable = p.gpu_memory_bytes * 4 * 0.9 - p.weights_bytes
    assert p.kv_capacity_tokens == int(usable // p.kv_bytes_per_token)
    # order 10^5 tokens: bounded by the memory of the replica and by the weights taking at least a third
    upper = p.gpu_memory_bytes * 4 * 0.9 / p.kv_bytes_per_token
    lower = (p.gpu_memory_bytes * 4 * 0.9 - 0.6 * p.gpu_memory_bytes * 4) / p.kv_bytes_per_token
    assert lower < p.kv_capacity_tokens < upper
    assert 1e5 <= p.kv_capacity_tokens < 1e6
    # more GPUs, more room
    assert load_profile("llama2-70b/h100/tp8").kv_capacity_tokens > p.kv_capacity_tokens
    assert load_profile("llama2-70b/h100/tp2").kv_capacity_tokens < p.kv_capacity_tokens


def test_cold_start_price_and_overrides() -> None:
    p = load_profile("llama2-70b/a100/tp8")
    assert p.cold_start_s == 155.0 and "vllm" in p.cold_start_source
    a100_on_demand = sorted(
        r.price_per_gpu_hour for r in gpu_prices() if r.on_demand and r.accelerator.startswith("A100 80GB")
    )
    assert p.price_per_gpu_hour == pytest.approx(statistics.median(a100_on_demand))
    q = load_profile("llama2-70b/a100/tp8", price_per_gpu_hour=2.5, cold_start_s=30)
    assert (q.price_per_gpu_hour, q.cold_start_s, q.price_source) == (2.5, 30.0, "user override")
    # overrides never leak into the cached profile
    assert load_profile("llama2-70b/a100/tp8").price_per_gpu_hour == p.price_per_gpu_hour
    with pytest.raises(InputError, match="price_per_gpu_hour"):
        load_profile("llama2-70b/a100/tp8", price_per_gpu_hour=-1)
    with pytest.raises(InputError, match="llama2-70b/h100/tp4"):
        load_profile("gpt-5/tpu/tp1")
    with pytest.raises(InputError, match="kv_link"):
        load_profile("llama2-70b/a100/tp8", kv_link="carrier-pigeon")


def test_price_table_rows_have_sources() -> None:
    rows = gpu_prices()
    assert len(rows) >= 10
    for row in rows:
        assert row.price_per_gpu_hour > 0 and row.source and row.date and row.provider and row.accelerator
    assert {r.provider for r in rows} >= {"AWS", "Azure"}


def test_leave_one_out_covers_each_curve() -> None:
    points = leave_one_out(load_profile("llama2-70b/h100/tp4"))
    curves = {p.curve for p in points}
    assert curves == {"prefill", "decode_batch", "decode_context"}
    interior = [p for p in points if not p.extrapolated]
    assert interior and all(abs(p.error) < 1.0 for p in interior)


# ------------------------------------------------------------------------------------- user-supplied profiles


def test_load_profile_csv_roundtrip(tmp_path: Path) -> None:
    lines = SPLITWISE.read_text().splitlines()[1:]
    rows = [r for r in lines if r.startswith("llama2-70b,h100-80gb,") and r.endswith(",4")]
    path = tmp_path / "mine.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n")
    mine = load_profile_csv(path)
    ref = load_profile("llama2-70b/h100/tp4")
    for tokens in (300.0, 2048.0, 20_000.0):
        assert mine.prefill_time_s(tokens) == ref.prefill_time_s(tokens)
    assert mine.decode_step_s(12, 3000) == ref.decode_step_s(12, 3000)
    assert mine.kv_capacity_tokens == ref.kv_capacity_tokens


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        ("", 1, "empty file"),
        ("a,b\n1,2\n", 1, "header is missing column(s)"),
        (HEADER + "llama2-70b,h100-80gb,512,1,128,1,1,50.0,30.0\n", 2, "truncated row"),
        (
            HEADER + "llama2-70b,h100-80gb,512,one,128,1,1,50.0,30.0,9000,4\n",
            2,
            "column batch_size: expected an integer >= 1, got 'one'",
        ),
        (
            HEADER + "llama2-70b,h100-80gb,512,1,128,1,1,nan,30.0,9000,4\n",
            2,
            "column prompt_time: expected a finite",
        ),
        (HEADER + "llama2-70b,h100-80gb,512,1,128,1,1,-5,30.0,9000,4\n", 2, "column prompt_time"),
    ],
)
def test_bad_profile_csv(tmp_path: Path, body: str, line: int, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(InputError) as info:
        load_profile_csv(path)
    assert info.value.source == str(path) and info.value.line == line
    assert expected in info.value.detail


def test_profile_csv_selection_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="several configurations"):
        load_profile_csv(SPLITWISE)
    with pytest.raises(InputError, match=r"bloom-176b.*not in the catalogue"):
        load_profile_csv(SPLITWISE, model="bloom-176b", hardware="h100-80gb")
    bloom = load_profile_csv(
        SPLITWISE,
        model="bloom-176b",
        hardware="h100-80gb",
        kv_bytes_per_token=2 * 70 * 14336 * 2,
        weights_bytes=352e9,
        cold_start_s=300,
    )
    assert bloom.gpus_per_replica == 8 and bloom.cold_start_source == "user override"
