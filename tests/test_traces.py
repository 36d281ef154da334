"""Trace loaders: formats, malformed input, options, seeded synthesis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoscaler.errors import InputError
from autoscaler.sim.traces import bundled_trace_names, bundled_trace_path, load_trace


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- bundled traces


@pytest.mark.parametrize(
    ("name", "rows", "span_s", "rate", "mean_in", "mean_out"),
    [
        # figures from the traces README
        ("azure_conv", 19_366, 3_502, 5.53, 1155, 211),
        ("azure_code", 8_819, 3_436, 2.57, 2048, 28),
    ],
)
def test_bundled_azure_matches_readme(
    name: str, rows: int, span_s: float, rate: float, mean_in: float, mean_out: float
) -> None:
    trace = load_trace(bundled_trace_path(name))
    assert len(trace) == rows
    assert trace.arrivals_s[0] == 0.0
    assert trace.arrivals_s[-1] == pytest.approx(span_s, abs=1.0)
    assert trace.mean_rate == pytest.approx(rate, abs=0.01)
    assert trace.input_tokens.mean() == pytest.approx(mean_in, abs=1)
    assert trace.output_tokens.mean() == pytest.approx(mean_out, abs=1)
    assert np.all(np.diff(trace.arrivals_s) >= 0)
    assert trace.arrivals_s.dtype == np.float64 and trace.input_tokens.dtype == np.int64
    assert trace.hash_ids is None
    assert trace.name == bundled_trace_path(name).stem


def test_bundled_mooncake_keeps_hash_ids() -> None:
    trace = load_trace(bundled_trace_path("mooncake"))
    assert len(trace) == 3_993
    assert trace.arrivals_s[-1] == pytest.approx(1_022.025)
    assert trace.hash_ids is not None and len(trace.hash_ids) == len(trace)
    # the first request's prompt of 40,160 tokens spans ceil(40160 / 512) = 79 blocks
    assert trace.input_tokens[0] == 40_160
    assert trace.hash_ids[0] == tuple(range(79))


def test_every_bundled_name_resolves() -> None:
    for name in bundled_trace_names():
        assert bundled_trace_path(name).is_file()
    with pytest.raises(InputError, match="azure_conv"):
        bundled_trace_path("nope")


# --- small files per format


def test_azure_2023_and_2024_timestamps(tmp_path: Path) -> None:
    naive = write(
        tmp_path,
        "a.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:04.0319600,3180,8\n"
        "2023-11-16 18:17:05.9799600,1,0\n",
    )
    offset = write(
        tmp_path,
        "b.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-10 00:00:00.004000+00:00,10,5\n2024-05-10 00:00:01.504000+00:00,20,6\n"
        # same instant as 00:00:03.004 UTC, written with a +02:00 offset
        "2024-05-10 02:00:03.004000+02:00,30,7\n",
    )
    a = load_trace(naive)
    assert a.arrivals_s.tolist() == pytest.approx([0.0, 0.052, 2.0])
    assert a.output_tokens.tolist() == [10, 8, 1]  # 0 generated tokens still yields the first token
    b = load_trace(offset)
    assert b.arrivals_s.tolist() == pytest.approx([0.0, 1.5, 3.0])
    assert b.input_tokens.tolist() == [10, 20, 30]


def test_plain_csv_and_mooncake(tmp_path: Path) -> None:
    plain = write(
        tmp_path, "p.csv", "timestamp_s,input_tokens,output_tokens\n5,100,10\n5.5,200,20\n7,300,30\n"
    )
    trace = load_trace(plain)
    assert trace.arrivals_s.tolist() == [0.0, 0.5, 2.0]
    assert trace.duration_s == 2.0 and trace.mean_rate == 1.5
    moon = write(
        tmp_path,
        "m.jsonl",
        '{"timestamp": 0, "input_length": 600, "output_length": 3, "hash_ids": [0, 1]}\n'
        '{"timestamp": 250, "input_length": 700, "output_length": 4, "hash_ids": [0, 2]}\n',
    )
    trace = load_trace(moon)
    assert trace.arrivals_s.tolist() == [0.0, 0.25]
    assert trace.hash_ids == ((0, 1), (0, 2))


# --- malformed input

AZ = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
PL = "timestamp_s,input_tokens,output_tokens\n"
SG = "window_start_s,day,hour_of_day,total_rate_rps,active_clients,rate_weighted_cv\n"


@pytest.mark.parametrize(
    ("name", "text", "line", "expected"),
    [
        ("empty.csv", "", 1, "empty file"),
        ("header_only.csv", AZ, 2, "no data rows"),
        ("wrong_header.csv", "time,in,out\n1,2,3\n", 1, "unrecognised header"),
        ("truncated.csv", AZ + "2023-11-16 18:17:03.97,48,10\n2023-11-16 18:17:04.0,48", 3, "truncated row"),
        ("too_many.csv", PL + "1,2,3,4\n", 2, "expected 3 fields"),
        (
            "bad_int.csv",
            AZ + "2023-11-16 18:17:03.97,abc,10\n",
            2,
            "column ContextTokens: expected a non-negative integer, got 'abc'",
        ),
        (
            "nan_tokens.csv",
            PL + "0,nan,3\n",
            2,
            "column input_tokens: expected a non-negative integer, got 'nan'",
        ),
        (
            "neg_tokens.csv",
            PL + "0,5,3\n1,5,-3\n",
            3,
            "column output_tokens: expected a non-negative integer",
        ),
        ("neg_time.csv", PL + "-1,5,3\n", 2, "timestamp_s: expected a finite non-negative number"),
        ("nan_time.csv", PL + "0,5,3\nnan,5,3\n", 3, "timestamp_s: expected a finite non-negative number"),
        (
            "backwards.csv",
            PL + "0,5,3\n2,5,3\n1,5,3\n",
            4,
            "timestamps go backwards: '1' is earlier than '2' on line 3",
        ),
        (
            "az_backwards.csv",
            AZ + "2023-11-16 18:17:05,1,1\n2023-11-16 18:17:04,1,1\n",
            3,
            "timestamps go backwards",
        ),
        (
            "bad_date.csv",
            AZ + "2023-11-16 18:17:05,1,1\n2023-13-16 18:17:06,1,1\n",
            3,
            "column TIMESTAMP: expected a date-time",
        ),
        (
            "bad.jsonl",
            '{"timestamp": 0, "input_length": 1, "output_length": 1}\n{"timestamp": 1,',
            2,
            "expected one JSON object per line",
        ),
        ("missing_key.jsonl", '{"timestamp": 0, "input_length": 1}\n', 1, "missing key 'output_length'"),
        (
            "neg_len.jsonl",
            '{"timestamp": 0, "input_length": -4, "output_length": 1}\n',
            1,
            "key 'input_length': expected a non-negative integer",
        ),
        (
            "back.jsonl",
            '{"timestamp": 9, "input_length": 1, "output_length": 1}\n'
            '{"timestamp": 3, "input_length": 1, "output_length": 1}\n',
            2,
            "timestamps go backwards",
        ),
        ("not_obj.jsonl", "[1, 2]\n", 1, "expected a JSON object"),
        ("env_cv.csv", SG + "0,0,0,5,3,1.2\n600,0,0.1,5,3,\n", 3, "rate_weighted_cv: expected a finite"),
        ("env_order.csv", SG + "0,0,0,5,3,1.2\n0,0,0,5,3,1.2\n", 3, "strictly increasing window starts"),
        ("env_rate.csv", SG + "0,0,0,-5,3,1.2\n600,0,0,5,3,1.2\n", 2, "total_rate_rps: expected a finite"),
    ],
)
def test_malformed_input_names_file_line_and_expectation(
    tmp_path: Path, name: str, text: str, line: int, expected: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(InputError) as info:
        load_trace(path)
    err = info.value
    assert err.source == str(path)
    assert err.line == line
    assert expected in err.detail
    assert f"{path}:{line}: " in str(err)


def test_wrong_header_for_forced_format(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", PL + "0,1,1\n")
    with pytest.raises(InputError, match="wrong header: expected TIMESTAMP,ContextTokens,GeneratedTokens"):
        load_trace(path, fmt="azure")


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"time_scale": 0}, "time_scale"),
        ({"rate_scale": -1}, "rate_scale"),
        ({"rate_scale": float("nan")}, "rate_scale"),
        ({"start_s": 10, "end_s": 5}, "end_s"),
        ({"fmt": "parquet"}, "fmt"),
    ],
)
def test_bad_options(options: dict[str, object], where: str) -> None:
    with pytest.raises(InputError) as info:
        load_trace(bundled_trace_path("azure_conv"), **options)  # type: ignore[arg-type]
    assert info.value.source == where


def test_missing_file_and_empty_window(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_trace(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="no requests in the window"):
        load_trace(bundled_trace_path("azure_conv"), start_s=10_000)


# --- options


def test_window_time_and_rate_scale() -> None:
    full = load_trace(bundled_trace_path("azure_conv"))
    cut = load_trace(bundled_trace_path("azure_conv"), start_s=600, end_s=1200)
    inside = (full.arrivals_s >= 600) & (full.arrivals_s < 1200)
    assert len(cut) == int(inside.sum())
    np.testing.assert_allclose(cut.arrivals_s, full.arrivals_s[inside] - 600, atol=1e-9)
    np.testing.assert_array_equal(cut.input_tokens, full.input_tokens[inside])

    fast = load_trace(bundled_trace_path("azure_conv"), time_scale=0.1)
    np.testing.assert_allclose(fast.arrivals_s, full.arrivals_s * 0.1)
    assert fast.mean_rate == pytest.approx(full.mean_rate * 10)

    half = load_trace(bundled_trace_path("azure_conv"), rate_scale=0.5, seed=1)
    assert len(half) == pytest.approx(len(full) / 2, rel=0.03)  # binomial sd ≈ 0.7 %
    triple = load_trace(bundled_trace_path("azure_conv"), rate_scale=2.5, seed=1)
    assert len(triple) == pytest.approx(len(full) * 2.5, rel=0.02)
    assert np.all(np.diff(triple.arrivals_s) >= 0)
    # the superposed copies keep the token mix
    assert triple.input_tokens.mean() == pytest.approx(full.input_tokens.mean(), rel=0.02)


def test_rate_scale_seeded_and_copies_do_not_share_prefixes() -> None:
    path = bundled_trace_path("mooncake")
    a = load_trace(path, rate_scale=2.0, seed=5)
    b = load_trace(path, rate_scale=2.0, seed=5)
    c = load_trace(path, rate_scale=2.0, seed=6)
    np.testing.assert_array_equal(a.arrivals_s, b.arrivals_s)
    assert a.hash_ids == b.hash_ids
    assert not np.array_equal(a.arrivals_s, c.arrivals_s)
    assert a.hash_ids is not None
    original = load_trace(path)
    assert original.hash_ids is not None
    top = max(max(h) for h in original.hash_ids if h)
    blocks = [set(h) for h in a.hash_ids]
    low = set().union(*(s for s in blocks if s and max(s) <= top))
    high = set().union(*(s for s in blocks if s and min(s) > top))
    assert low and high and not (low & high)


# --- ServeGen


def envelope(tmp_path: Path, rows: list[tuple[float, float, float]]) -> Path:
    body = "".join(f"{start},0,0,{rate},1,{cv}\n" for start, rate, cv in rows)
    return write(tmp_path, "env.csv", SG + body)


@pytest.mark.parametrize(("rate", "cv"), [(5.0, 1.0), (20.0, 0.5), (10.0, 2.0), (2.0, 3.0)])
def test_gamma_process_matches_rate_and_cv(tmp_path: Path, rate: float, cv: float) -> None:
    # 20 windows of 600 s with a constant rate and CV: the empirical rate and gap CV should match.
    path = envelope(tmp_path, [(600.0 * i, rate, cv) for i in range(20)])
    trace = load_trace(path, seed=11)
    expected = rate * 12_000
    # count sd for a renewal process ≈ cv·sqrt(expected); allow 5 sd
    assert abs(len(trace) - expected) < 5 * cv * np.sqrt(expected) + 10
    gaps = np.diff(trace.arrivals_s)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.15)
    assert trace.arrivals_s[-1] < 12_000


def test_envelope_follows_window_rates_and_options(tmp_path: Path) -> None:
    path = envelope(tmp_path, [(0, 1.0, 1.0), (600, 10.0, 1.0), (1200, 0.0, 0.0), (1800, 4.0, 1.5)])
    trace = load_trace(path, seed=2)
    counts = np.histogram(trace.arrivals_s, bins=[0, 600, 1200, 1800, 2400])[0]
    assert counts[0] == pytest.approx(600, rel=0.2)
    assert counts[1] == pytest.approx(6000, rel=0.1)
    assert counts[2] <= 2  # a gap started just before the silent window may land in it
    assert counts[3] == pytest.approx(2400, rel=0.2)
    # window cut in source seconds, then 10x time compression, then half the rate
    cut = load_trace(path, seed=2, start_s=600, end_s=1200, time_scale=0.1, rate_scale=0.5)
    assert cut.arrivals_s.min() >= 0 and cut.arrivals_s.max() < 60
    assert len(cut) == pytest.approx(3000, rel=0.1)


def test_envelope_seeds_and_token_source(tmp_path: Path) -> None:
    path = envelope(tmp_path, [(0, 3.0, 1.2), (600, 3.0, 1.2)])
    a, b, c = (load_trace(path, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.arrivals_s, b.arrivals_s)
    np.testing.assert_array_equal(a.input_tokens, b.input_tokens)
    assert not np.array_equal(a.arrivals_s[:50], c.arrivals_s[:50])
    pool = write(tmp_path, "pool.csv", PL + "0,111,7\n1,222,9\n")
    d = load_trace(path, seed=1, tokens_from=pool)
    assert set(zip(d.input_tokens.tolist(), d.output_tokens.tolist(), strict=True)) == {(111, 7), (222, 9)}
    with pytest.raises(InputError, match="not a rate envelope"):
        load_trace(path, tokens_from=path)


def test_envelope_cap_refuses_and_suggests() -> None:
    path = bundled_trace_path("servegen_m_large")
    with pytest.raises(InputError) as info:
        load_trace(path)
    assert "rate_scale=" in info.value.detail and "start_s=" in info.value.detail
    assert "236,8" in info.value.detail or "236,9" in info.value.detail  # ≈ 195.8 req/s × 14 days
    with pytest.raises(InputError, match="more than the cap of 1,000"):
        load_trace(path, end_s=3600, max_requests=1_000)
    hour = load_trace(path, end_s=3600, rate_scale=0.1, seed=0)
    assert hour.arrivals_s.max() < 3600
    rates = np.loadtxt(path, delimiter=",", skiprows=1, usecols=3, max_rows=6)
    # very bursty windows (CV up to ~2): a generous band around the expected count
    assert len(hour) == pytest.approx(0.1 * 600 * rates.sum(), rel=0.3)
