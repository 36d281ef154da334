"""Request traces for the digital twin: load real LLM-serving traffic, or synthesise it from a rate envelope.

Formats (details and provenance: ``autoscaler/sim/data/traces/README.md`` and ``docs/simulator-data.md``):

* **Azure LLM inference** CSV ``TIMESTAMP,ContextTokens,GeneratedTokens`` — 2023 naive timestamps with seven
  fractional digits and 2024 timestamps with a ``+00:00`` offset (any ``±HH:MM`` offset or ``Z`` is honoured);
* **Mooncake** JSONL, one ``{"timestamp": ms, "input_length": n, "output_length": n, "hash_ids": [...]}`` per
  line; ``hash_ids`` (prefix-block ids, 512-token blocks) are kept for prefix-aware routing;
* **plain CSV** ``timestamp_s,input_tokens,output_tokens``;
* **ServeGen rate envelope**
  ``window_start_s,day,hour_of_day,total_rate_rps,active_clients,rate_weighted_cv``: arrivals are
  synthesised by a Gamma renewal process whose rate and inter-arrival coefficient of variation are
  the window's, with (input, output) pairs drawn from another trace (``tokens_from``).

Options apply in this order: cut the window ``[start_s, end_s)`` in the source's own seconds (Azure: seconds
since the first row; Mooncake: ``timestamp / 1000``; plain CSV: ``timestamp_s``; envelope:
``window_start_s``),
re-zero at ``start_s`` (or at the first arrival), scale the rate (``rate_scale``), then compress time
(``time_scale``). Every random choice comes from a NumPy ``Generator`` seeded by ``seed``: same inputs and
seed,
same arrays.

Errors are :class:`~autoscaler.errors.InputError` naming the file, the line and what was expected.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from autoscaler.errors import InputError

__all__ = [
    "DEFAULT_MAX_REQUESTS",
    "FORMATS",
    "Trace",
    "bundled_trace_names",
    "bundled_trace_path",
    "load_trace",
]

DEFAULT_MAX_REQUESTS = 50_000_000
"""Largest synthetic trace :func:`load_trace` builds (requests). At 24 bytes per request the arrays then take
about 1.2 GB; ServeGen's 14-day m-large envelope at full rate is ~237 M requests."""

FORMATS = ("auto", "azure", "mooncake", "csv", "servegen")

DATA_DIR = Path(__file__).resolve().parent / "data" / "traces"

_BUNDLED = {
    "azure_conv": "azure_llm_2023_conv.csv",
    "azure_code": "azure_llm_2023_code.csv",
    "mooncake": "mooncake_fast25_synthetic_trace.jsonl",
    "servegen_m_large": "servegen_m-large_rate_10min.csv",
    "servegen_m_small": "servegen_m-small_rate_10min.csv",
    "servegen_mm_image": "servegen_mm-image_rate_10min.csv",
    "servegen_m_large_tokens": "servegen_m-large_tokens_6h.csv",
    "servegen_m_small_tokens": "servegen_m-small_tokens_6h.csv",
    "servegen_mm_image_tokens": "servegen_mm-image_tokens_6h.csv",
}

_AZURE = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_PLAIN = ("timestamp_s", "input_tokens", "output_tokens")
_ENVELOPE = ("window_start_s", "day", "hour_of_day", "total_rate_rps", "active_clients", "rate_weighted_cv")
_MOONCAKE_SHAPE = '{"timestamp": ms, "input_length": tokens, "output_length": tokens, "hash_ids": [ints]}'

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Trace:
    """A sequence of requests.

    Attributes:
        name: short name, e.g. ``"azure_llm_2023_conv"`` (the file's stem).
        source: the file it came from, and for synthetic traces how it was made.
        arrivals_s: float64 arrival times, sorted ascending, seconds since the trace start
            (first arrival ≈ 0).
        input_tokens: int64 prompt lengths, ≥ 1.
        output_tokens: int64 output lengths, ≥ 1.
        hash_ids: Mooncake prefix-block ids per request (equal ids = reusable prefix KV), else ``None``.
    """

    name: str
    source: str
    arrivals_s: F64
    input_tokens: I64
    output_tokens: I64
    hash_ids: tuple[tuple[int, ...], ...] | None = None

    def __len__(self) -> int:
        return int(self.arrivals_s.shape[0])

    @property
    def duration_s(self) -> float:
        """Seconds from the trace start (t = 0) to the last arrival; 0 for an empty trace."""
        return float(self.arrivals_s[-1]) if len(self) else 0.0

    @property
    def mean_rate(self) -> float:
        """Requests per second over :attr:`duration_s` (0 when the duration is 0)."""
        duration = self.duration_s
        return len(self) / duration if duration > 0 else 0.0


def bundled_trace_names() -> list[str]:
    """Short names accepted by :func:`bundled_trace_path`."""
    return sorted(_BUNDLED)


def bundled_trace_path(name: str) -> Path:
    """Path of a bundled trace by short name (``"azure_conv"``, ``"azure_code"``, ``"mooncake"``,
    ``"servegen_m_large"``...; see :func:`bundled_trace_names`) or by file name."""
    file = _BUNDLED.get(name, name)
    path = DATA_DIR / file
    if file not in _BUNDLED.values() or not path.is_file():
        raise InputError(
            f"unknown bundled trace {name!r}: expected one of {', '.join(bundled_trace_names())}",
            source="trace",
        )
    return path


# ------------------------------------------------------------------------------------------------ parsing


@dataclass(slots=True)
class _Raw:
    seconds: F64  # in the source's own seconds
    inputs: I64
    outputs: I64
    hash_ids: list[tuple[int, ...]] | None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise InputError("expected a trace file, got a directory", source=str(path)) from None
    except UnicodeDecodeError:
        raise InputError(
            "expected a UTF-8 text file (CSV or JSONL), got binary data", source=str(path)
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", source=str(path)) from None


def _detect(path: Path, first_line: str) -> str:
    if path.suffix.lower() in (".jsonl", ".ndjson") or first_line.lstrip().startswith("{"):
        return "mooncake"
    header = tuple(c.strip() for c in first_line.split(","))
    for fmt, cols in (("azure", _AZURE), ("csv", _PLAIN), ("servegen", _ENVELOPE)):
        if header == cols:
            return fmt
    raise InputError(
        f"unrecognised header {first_line.strip()!r}: expected {','.join(_AZURE)} (Azure LLM inference), "
        f"{','.join(_PLAIN)} (plain CSV), {','.join(_ENVELOPE)} (ServeGen rate envelope), "
        "or a .jsonl Mooncake trace",
        source=str(path),
        line=1,
    )


def _csv_columns(text: str, path: Path, header: tuple[str, ...], what: str) -> tuple[list[list[str]], I64]:
    """Split a CSV body into columns of strings after checking the header; return (columns, line numbers)."""
    lines = text.splitlines()
    source = str(path)
    if not lines or not lines[0].strip():
        raise InputError(
            f"empty file: expected a header line {','.join(header)} ({what})", source=source, line=1
        )
    got = tuple(c.strip() for c in lines[0].split(","))
    if got != header:
        raise InputError(
            f"wrong header: expected {','.join(header)} ({what}), got {lines[0].strip()!r}",
            source=source,
            line=1,
        )
    rows: list[list[str]] = []
    numbers: list[int] = []
    width = len(header)
    for number, fields in enumerate(csv.reader(lines[1:]), start=2):
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if len(fields) != width:
            hint = " (truncated row?)" if len(fields) < width else ""
            raise InputError(
                f"expected {width} fields ({','.join(header)}), got {len(fields)}{hint}",
                source=source,
                line=number,
            )
        rows.append(fields)
        numbers.append(number)
    if not rows:
        raise InputError(
            f"no data rows: expected rows of {','.join(header)} after the header", source=source, line=2
        )
    columns = [list(col) for col in zip(*rows, strict=True)]
    return columns, np.asarray(numbers, dtype=np.int64)


def _ints(values: list[str], lines: I64, path: Path, column: str) -> I64:
    """Non-negative integers, vectorised; on failure find the first bad row for the message."""
    expected = f"column {column}: expected a non-negative integer"
    try:
        out = np.asarray(values, dtype=np.str_).astype(np.int64)
    except (ValueError, OverflowError):
        for value, line in zip(values, lines, strict=True):
            try:
                int(value)
            except ValueError:
                raise InputError(f"{expected}, got {value!r}", source=str(path), line=int(line)) from None
        raise InputError(f"{expected}", source=str(path)) from None
    bad = np.flatnonzero(out < 0)
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{expected}, got {values[i]!r}", source=str(path), line=int(lines[i]))
    return out


def _floats(values: list[str], lines: I64, path: Path, column: str, *, what: str) -> F64:
    """Finite non-negative floats, vectorised; on failure find the first bad row for the message."""
    expected = f"column {column}: expected {what}"
    try:
        out = np.asarray(values, dtype=np.str_).astype(np.float64)
    except ValueError:
        for value, line in zip(values, lines, strict=True):
            try:
                float(value)
            except ValueError:
                raise InputError(f"{expected}, got {value!r}", source=str(path), line=int(line)) from None
        raise InputError(expected, source=str(path)) from None
    bad = np.flatnonzero(~np.isfinite(out) | (out < 0))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{expected}, got {values[i]!r}", source=str(path), line=int(lines[i]))
    return out


def _check_sorted(seconds: F64, texts: list[str], lines: I64, path: Path, column: str) -> None:
    back = np.flatnonzero(np.diff(seconds) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(
            f"column {column}: timestamps go backwards: {texts[i]!r} is earlier than {texts[i - 1]!r} "
            f"on line "
            f"{int(lines[i - 1])}; expected non-decreasing timestamps (sort the file by {column})",
            source=str(path),
            line=int(lines[i]),
        )


def _azure_seconds(values: list[str], lines: I64, path: Path) -> F64:
    """Seconds since the first row from naive or UTC-offset timestamps (offset applied, result in UTC)."""
    naive: list[str] = []
    offsets = np.zeros(len(values), dtype=np.int64)  # seconds east of UTC
    for i, raw in enumerate(values):
        text = raw.strip()
        if text.endswith("Z"):
            text = text[:-1]
        elif (
            len(text) > 6
            and text[-6] in "+-"
            and text[-3] == ":"
            and text[-5:-3].isdigit()
            and text[-2:].isdigit()
        ):
            sign = 1 if text[-6] == "+" else -1
            offsets[i] = sign * (int(text[-5:-3]) * 3600 + int(text[-2:]) * 60)
            text = text[:-6]
        naive.append(text)
    expected = "column TIMESTAMP: expected a date-time like 2023-11-16 18:17:03.9799600 (optionally +00:00)"
    try:
        stamps = np.asarray(naive, dtype="datetime64[ns]")
    except ValueError:
        for text, raw, line in zip(naive, values, lines, strict=True):
            try:
                np.datetime64(text, "ns")
            except ValueError:
                raise InputError(f"{expected}, got {raw!r}", source=str(path), line=int(line)) from None
        raise InputError(expected, source=str(path)) from None
    if np.isnat(stamps).any():
        i = int(np.flatnonzero(np.isnat(stamps))[0])
        raise InputError(f"{expected}, got {values[i]!r}", source=str(path), line=int(lines[i]))
    ns = stamps.astype(np.int64) - offsets * 1_000_000_000
    seconds: F64 = (ns - ns[0]).astype(np.float64) / 1e9
    _check_sorted(seconds, values, lines, path, "TIMESTAMP")
    return seconds


def _parse_azure(text: str, path: Path) -> _Raw:
    cols, lines = _csv_columns(text, path, _AZURE, "Azure LLM inference trace")
    seconds = _azure_seconds(cols[0], lines, path)
    return _Raw(
        seconds,
        _ints(cols[1], lines, path, "ContextTokens"),
        _ints(cols[2], lines, path, "GeneratedTokens"),
        None,
    )


def _parse_plain(text: str, path: Path) -> _Raw:
    cols, lines = _csv_columns(text, path, _PLAIN, "plain request CSV")
    seconds = _floats(cols[0], lines, path, "timestamp_s", what="a finite non-negative number of seconds")
    _check_sorted(seconds, cols[0], lines, path, "timestamp_s")
    return _Raw(
        seconds,
        _ints(cols[1], lines, path, "input_tokens"),
        _ints(cols[2], lines, path, "output_tokens"),
        None,
    )


def _json_int(obj: dict[str, Any], key: str, path: Path, line: int) -> int:
    if key not in obj:
        raise InputError(f"missing key {key!r}: expected {_MOONCAKE_SHAPE}", source=str(path), line=line)
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(
            f"key {key!r}: expected a non-negative integer, got {value!r}", source=str(path), line=line
        )
    return value


def _parse_mooncake(text: str, path: Path) -> _Raw:
    source = str(path)
    stamps: list[float] = []
    inputs: list[int] = []
    outputs: list[int] = []
    hashes: list[tuple[int, ...]] = []
    with_hashes = 0
    numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"expected one JSON object per line {_MOONCAKE_SHAPE}: {exc.msg} at column {exc.colno}",
                source=source,
                line=number,
            ) from None
        if not isinstance(obj, dict):
            raise InputError(
                f"expected a JSON object {_MOONCAKE_SHAPE}, got {type(obj).__name__}",
                source=source,
                line=number,
            )
        if "timestamp" not in obj:
            raise InputError(
                f"missing key 'timestamp': expected {_MOONCAKE_SHAPE}", source=source, line=number
            )
        ts = obj["timestamp"]
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts < 0:
            raise InputError(
                f"key 'timestamp': expected a non-negative number of milliseconds, got {ts!r}",
                source=source,
                line=number,
            )
        if stamps and ts < stamps[-1] * 1e3:
            raise InputError(
                f"key 'timestamp': timestamps go backwards: {ts!r} is earlier than "
                f"{stamps[-1] * 1e3:g} on line "
                f"{numbers[-1]}; expected non-decreasing timestamps (sort the file by timestamp)",
                source=source,
                line=number,
            )
        inputs.append(_json_int(obj, "input_length", path, number))
        outputs.append(_json_int(obj, "output_length", path, number))
        ids = obj.get("hash_ids")
        if ids is not None:
            if not isinstance(ids, list) or not all(
                isinstance(h, int) and not isinstance(h, bool) for h in ids
            ):
                raise InputError(
                    f"key 'hash_ids': expected a list of integers, got {ids!r:.60}",
                    source=source,
                    line=number,
                )
            with_hashes += 1
        hashes.append(tuple(ids) if ids is not None else ())
        stamps.append(ts / 1e3)
        numbers.append(number)
    if not stamps:
        raise InputError(
            f"empty file: expected one JSON object per line {_MOONCAKE_SHAPE}", source=source, line=1
        )
    if 0 < with_hashes < len(stamps):
        missing = next(n for n, h in zip(numbers, hashes, strict=True) if not h)
        raise InputError(
            "key 'hash_ids' missing here but present on other lines: expected it on every line or none",
            source=source,
            line=missing,
        )
    return _Raw(
        np.asarray(stamps, dtype=np.float64),
        np.asarray(inputs, dtype=np.int64),
        np.asarray(outputs, dtype=np.int64),
        hashes if with_hashes else None,
    )


@dataclass(slots=True)
class _Envelope:
    starts: F64
    lengths: F64
    rates: F64
    cvs: F64


def _parse_envelope(text: str, path: Path) -> _Envelope:
    cols, lines = _csv_columns(text, path, _ENVELOPE, "ServeGen rate envelope")
    starts = _floats(cols[0], lines, path, "window_start_s", what="a finite non-negative number of seconds")
    rates = _floats(cols[3], lines, path, "total_rate_rps", what="a finite non-negative rate (requests/s)")
    if len(starts) < 2:
        raise InputError(
            "expected at least two windows (the window length is the spacing of window_start_s)",
            source=str(path),
            line=int(lines[0]),
        )
    step = np.diff(starts)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise InputError(
            f"column window_start_s: expected strictly increasing window starts, got {cols[0][i]!r} after "
            f"{cols[0][i - 1]!r}",
            source=str(path),
            line=int(lines[i]),
        )
    lengths = np.append(step, step[-1])
    # An empty CV is how the envelope marks windows with no traffic; anywhere else it is an error.
    cv_text = [c if c.strip() or r > 0 else "0" for c, r in zip(cols[5], rates, strict=True)]
    cvs = _floats(
        cv_text,
        lines,
        path,
        "rate_weighted_cv",
        what="a finite non-negative coefficient of variation (blank only when total_rate_rps is 0)",
    )
    return _Envelope(starts, lengths, rates, cvs)


# ---------------------------------------------------------------------------------------------- transforms


def _check_options(
    time_scale: float, rate_scale: float, start_s: float | None, end_s: float | None, max_requests: int
) -> None:
    for value, name in ((time_scale, "time_scale"), (rate_scale, "rate_scale")):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise InputError(f"expected a finite number > 0, got {value!r}", source=name)
    for bound, name in ((start_s, "start_s"), (end_s, "end_s")):
        if bound is not None and not (isinstance(bound, int | float) and math.isfinite(bound)):
            raise InputError(f"expected a finite number of seconds, got {bound!r}", source=name)
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise InputError(f"expected end_s > start_s, got start_s={start_s!r} end_s={end_s!r}", source="end_s")
    if max_requests < 1:
        raise InputError(f"expected a positive integer, got {max_requests!r}", source="max_requests")


def _rescale_rate(raw: _Raw, rate_scale: float, origin_span: float, rng: np.random.Generator) -> _Raw:
    """Thin (< 1) or superpose jittered copies (> 1) of the requests."""
    n = raw.seconds.shape[0]
    if rate_scale == 1.0 or n == 0:
        return raw
    whole = math.floor(rate_scale)
    frac = rate_scale - whole
    # Copy 0 is the original; copies 1..whole-1 are full; the last copy keeps each request with prob. frac.
    pieces: list[tuple[int, npt.NDArray[np.int64]]] = [(k, np.arange(n)) for k in range(whole)]
    if frac > 0:
        pieces.append((whole, np.flatnonzero(rng.random(n) < frac)))
    # A copy is shifted by up to one mean inter-arrival gap, so bursts keep their shape at coarser scales.
    mean_gap = origin_span / n if origin_span > 0 else 0.0
    seconds, sources, copies = [], [], []
    for k, idx in pieces:
        jitter = rng.uniform(0.0, mean_gap, idx.shape[0]) if k > 0 else np.zeros(idx.shape[0])
        seconds.append(raw.seconds[idx] + jitter)
        sources.append(idx)
        copies.append(np.full(idx.shape[0], k, dtype=np.int64))
    all_s = np.concatenate(seconds)
    all_idx = np.concatenate(sources)
    all_copy = np.concatenate(copies)
    order = np.argsort(all_s, kind="stable")
    hashes = None
    if raw.hash_ids is not None:
        # Copies get disjoint block ids: they stand for other users, who do not share the original's prefixes.
        stride = 1 + max((max(h) for h in raw.hash_ids if h), default=0)
        hashes = [tuple(b + int(all_copy[j]) * stride for b in raw.hash_ids[int(all_idx[j])]) for j in order]
    return _Raw(all_s[order], raw.inputs[all_idx[order]], raw.outputs[all_idx[order]], hashes)


def _cut(raw: _Raw, start_s: float | None, end_s: float | None, path: Path) -> _Raw:
    if start_s is None and end_s is None:
        return raw
    lo = -math.inf if start_s is None else start_s
    hi = math.inf if end_s is None else end_s
    i0 = int(np.searchsorted(raw.seconds, lo, side="left"))
    i1 = int(np.searchsorted(raw.seconds, hi, side="left"))
    if i1 <= i0:
        raise InputError(
            f"no requests in the window [{start_s}, {end_s}) s: the trace spans {raw.seconds[0]:g}.."
            f"{raw.seconds[-1]:g} s (in its own seconds)",
            source=str(path),
        )
    return _Raw(
        raw.seconds[i0:i1],
        raw.inputs[i0:i1],
        raw.outputs[i0:i1],
        raw.hash_ids[i0:i1] if raw.hash_ids is not None else None,
    )


def _gamma_renewal(env: _Envelope, rng: np.random.Generator) -> F64:
    """Arrivals of a renewal process whose gaps are Gamma with the rate and CV of the window they start in.

    The clock carries across window boundaries (the gap that crosses into the next window keeps its arrival),
    so there is no restart bias; after a window with rate 0 the process restarts at the next window's start.
    """
    chunks: list[F64] = []
    t = float(env.starts[0])
    end = float(env.starts[-1] + env.lengths[-1])
    for a, length, rate, cv in zip(
        env.starts.tolist(), env.lengths.tolist(), env.rates.tolist(), env.cvs.tolist(), strict=True
    ):
        b = a + length
        if rate <= 0:
            continue
        if t >= b:
            continue  # a gap begun earlier jumps over this whole window
        if t < a:
            t = a  # first window, or after a window with no traffic: the renewal clock restarts here
        need = (b - t) * rate
        while t < b:
            m = int(need + 4.0 * math.sqrt(need + 1.0) * max(cv, 1.0) + 16)
            if cv > 0:
                shape = 1.0 / (cv * cv)
                gaps = rng.gamma(shape, 1.0 / (rate * shape), m)
            else:
                gaps = np.full(m, 1.0 / rate)
            times = t + np.cumsum(gaps)
            # keep arrivals whose gap starts inside the window: up to and including the first one past b
            k = int(np.searchsorted(times, b, side="left"))
            take = times[: k + 1] if k < m else times
            chunks.append(take)
            t = float(take[-1])
            need = max((b - t) * rate, 0.0)
    if not chunks:
        return np.zeros(0, dtype=np.float64)
    arrivals = np.concatenate(chunks)
    return arrivals[arrivals < end]


def _synthesise(
    env: _Envelope,
    path: Path,
    *,
    rate_scale: float,
    start_s: float | None,
    end_s: float | None,
    seed: int,
    tokens_from: str | Path | None,
    max_requests: int,
) -> tuple[_Raw, float, str]:
    starts, ends = env.starts, env.starts + env.lengths
    if start_s is not None or end_s is not None:
        lo = -math.inf if start_s is None else start_s
        hi = math.inf if end_s is None else end_s
        keep = (ends > lo) & (starts < hi)
        if not keep.any():
            raise InputError(
                f"no windows in [{start_s}, {end_s}) s: the envelope spans {starts[0]:g}..{ends[-1]:g} s",
                source=str(path),
            )
        starts, ends = np.clip(starts[keep], lo, hi), np.clip(ends[keep], lo, hi)
        env = _Envelope(starts, ends - starts, env.rates[keep], env.cvs[keep])
    env = _Envelope(env.starts, env.lengths, env.rates * rate_scale, env.cvs)
    expected = float(np.sum(env.rates * env.lengths))
    if expected > max_requests:
        span = float(env.lengths.sum())
        suggest = max_requests / expected * rate_scale
        raise InputError(
            f"this envelope would produce about {expected:,.0f} requests ({expected / span:,.1f} req/s over "
            f"{span / 86400:.1f} days), more than the cap of {max_requests:,}: reduce it with rate_scale= "
            f"(e.g. rate_scale={suggest:.3g}), cut a window with start_s=/end_s= (e.g. one day: start_s=0, "
            "end_s=86400), or raise max_requests=",
            source=str(path),
        )
    arrivals_ss, tokens_ss = np.random.SeedSequence(seed).spawn(2)
    arrivals = _gamma_renewal(env, np.random.default_rng(arrivals_ss))
    token_path = bundled_trace_path("azure_conv") if tokens_from is None else Path(tokens_from)
    text = _read_text(token_path)
    fmt = _detect(token_path, text.split("\n", 1)[0])
    if fmt == "servegen":
        raise InputError(
            "tokens_from must be a request trace (Azure, Mooncake or plain CSV), not a rate envelope",
            source=str(token_path),
        )
    pool = _PARSERS[fmt](text, token_path)
    pick = np.random.default_rng(tokens_ss).integers(0, pool.inputs.shape[0], arrivals.shape[0])
    origin = float(env.starts[0]) if start_s is None else float(start_s)
    note = f"Gamma renewal from {path} (seed {seed}); tokens sampled from {token_path}"
    return _Raw(arrivals, pool.inputs[pick], pool.outputs[pick], None), origin, note


_PARSERS = {"azure": _parse_azure, "csv": _parse_plain, "mooncake": _parse_mooncake}


def load_trace(
    path: str | Path,
    *,
    fmt: str = "auto",
    time_scale: float = 1.0,
    rate_scale: float = 1.0,
    start_s: float | None = None,
    end_s: float | None = None,
    seed: int = 0,
    tokens_from: str | Path | None = None,
    max_requests: int = DEFAULT_MAX_REQUESTS,
) -> Trace:
    """Load (or, for a rate envelope, synthesise) a trace.

    Args:
        path: the trace file (see :func:`bundled_trace_path` for the bundled ones).
        fmt: ``"auto"`` (from the extension and header), ``"azure"``, ``"mooncake"``, ``"csv"`` or
            ``"servegen"``.
        time_scale: multiply time by this (> 0): 0.1 plays the trace 10× faster, with the same requests.
        rate_scale: requests per request (> 0): below 1 keeps each request with that probability; above 1 adds
            copies shifted by up to one mean inter-arrival gap. For an envelope it multiplies the rates.
        start_s: cut: first second to keep, in the source's own seconds (before any scaling).
        end_s: cut: first second not to keep, in the source's own seconds.
        seed: seeds every random choice (thinning, copies, synthetic arrivals and token sampling).
        tokens_from: for an envelope, the request trace whose (input, output) pairs are sampled; default the
            bundled Azure 2023 conversation trace.
        max_requests: refuse (InputError) to synthesise an envelope whose expected size is above this.

    Raises:
        InputError: malformed file (file:line and what was expected), bad options, an empty window, or a
            synthetic trace over ``max_requests``.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise InputError(f"expected one of {', '.join(FORMATS)}, got {fmt!r}", source="fmt")
    _check_options(time_scale, rate_scale, start_s, end_s, max_requests)
    text = _read_text(path)
    if not text.strip():
        raise InputError(
            "empty file: expected a trace (CSV with a header, or JSONL)", source=str(path), line=1
        )
    kind = _detect(path, text.split("\n", 1)[0]) if fmt == "auto" else fmt
    name = path.stem
    if kind == "servegen":
        env = _parse_envelope(text, path)
        raw, origin, source = _synthesise(
            env,
            path,
            rate_scale=rate_scale,
            start_s=start_s,
            end_s=end_s,
            seed=seed,
            tokens_from=tokens_from,
            max_requests=max_requests,
        )
    else:
        raw = _cut(_PARSERS[kind](text, path), start_s, end_s, path)
        origin = float(raw.seconds[0]) if start_s is None else float(start_s)
        span = float(raw.seconds[-1] - origin)
        raw = _rescale_rate(raw, rate_scale, span, np.random.default_rng(np.random.SeedSequence(seed)))
        source = str(path)
    if rate_scale != 1.0 or time_scale != 1.0 or start_s is not None or end_s is not None:
        source += f" [start_s={start_s}, end_s={end_s}, rate_scale={rate_scale:g}, time_scale={time_scale:g}]"
    arrivals = (raw.seconds - origin) * time_scale
    return Trace(
        name=name,
        source=source,
        arrivals_s=np.ascontiguousarray(arrivals, dtype=np.float64),
        # A request has at least one prompt token and yields at least one output token (the prefill's).
        input_tokens=np.maximum(raw.inputs, 1).astype(np.int64, copy=False),
        output_tokens=np.maximum(raw.outputs, 1).astype(np.int64, copy=False),
        hash_ids=tuple(raw.hash_ids) if raw.hash_ids is not None else None,
    )
