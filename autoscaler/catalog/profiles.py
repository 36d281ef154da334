"""Measured performance profiles: what one replica of (model × GPU × tensor parallelism) can do.

Built from the bundled measurements in ``data/`` (provenance in ``data/README.md``; method and validation in
``docs/simulator-data.md``):

* **prefill time vs batch tokens** — Splitwise (``splitwise_sim_perf_model.csv``, milliseconds) and SageServe
  (``sageserve_*.csv``, seconds) runs; medians of repeats, piecewise-linear.
* **decode step time vs batch size** at the reference context (prompt 512 + half of 128 output tokens = 576),
  and **vs context** at batch size 1 (from the prompt-length and output-length sweeps). The measurements
  form a
  star around (batch 1, context 576), never a grid, so off-axis values use a stated separable rule:
  ``step(b, c) = B(b) · C(c) / C(c_ref)`` — exact on both measured axes.
* **KV bytes per token** and model weights from the HF configs (``kv_cache_bytes_per_token.csv``); **KV-cache
  capacity** = (GPU memory × TP × utilisation − weights) / KV bytes per token.
* **KV transfer** prefill→decode from Vidur's measured NCCL send/recv times; beyond the largest measured
  message, the bandwidth measured at that message.
* **cold start** from ``cold_start_reference.csv`` rows (named per profile), **price** from
  :mod:`autoscaler.catalog.prices`.

Curves are non-decreasing by construction (see :mod:`autoscaler.catalog._interp`); every extrapolation and
every
measurement left out is listed in :attr:`MeasuredProfile.extrapolation_notes`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from autoscaler.catalog._csvread import Row, read_rows
from autoscaler.catalog._interp import Curve
from autoscaler.catalog.prices import default_price
from autoscaler.errors import InputError

__all__ = [
    "GPU_MEMORY_UTILIZATION",
    "LooPoint",
    "MeasuredProfile",
    "leave_one_out",
    "load_profile",
    "load_profile_csv",
    "profile_names",
]

DATA_DIR = Path(__file__).resolve().parent / "data"

GPU_MEMORY_UTILIZATION = 0.9
"""Fraction of GPU memory the engine may use (vLLM's ``gpu_memory_utilization`` default, 0.9)."""

_PERF_COLUMNS = (
    "model",
    "hardware",
    "prompt_size",
    "batch_size",
    "token_size",
    "prompt_time",
    "token_time",
    "tensor_parallel",
)
_KV_COLUMNS = ("model", "num_kv_heads", "kv_bytes_per_token_bf16", "weights_GB_bf16", "config_source")
_COLD_COLUMNS = ("model", "setup", "phase", "seconds", "source", "source_date", "note")
_ACCEL_COLUMNS = ("accelerator", "memory_bytes", "price_gpu_prefix", "description", "source")
_NET_COLUMNS = ("time_stats.send_recv.median", "size", "num_workers", "devices_per_node")

# Units of the two perf schemas (the README in data/ explains them): Splitwise times are ms, ``token_time``
# per
# decode step; SageServe times are seconds and ``token_time`` covers all ``token_size`` decode steps.
UNITS = ("splitwise", "sageserve")

KV_LINKS = {"inter-node": 1, "intra-node": 2}
"""KV-transfer link → Vidur ``devices_per_node`` of the measurement: 1 = the two GPUs are on different nodes
(InfiniBand), 2 = the same node (NVLink). Prefill and decode replicas are separate pods, so inter-node is the
default."""


@dataclass(frozen=True, slots=True)
class _ModelFacts:
    key: str  # row in kv_cache_bytes_per_token.csv / model_shapes_extra.csv
    display: str
    cold_start: tuple[tuple[str, str], ...]  # (model, phase) rows of cold_start_reference.csv, summed
    cold_note: str


_MODELS: dict[str, _ModelFacts] = {
    "llama2-70b": _ModelFacts(
        "Llama-2-70B",
        "Llama2-70B",
        (
            ("Llama-70B FP8", "weight load from hot page cache"),
            ("Llama-70B FP8", "dynamo bytecode transform"),
            ("Llama-70B FP8", "torch.compile"),
            ("Llama-70B FP8", "CUDA graph capture"),
        ),
        "the P2P access check (60 s) is left out: VLLM_SKIP_P2P_CHECK=1 skips it; measured with FP8 "
        "weights at "
        "TP8, the closest 70B measurement available",
    ),
    "llama-3.1-8b": _ModelFacts(
        "Llama-3/3.1-8B",
        "Llama-3.1-8B",
        (
            ("Llama-3.2 (3B-class; 3.4 GiB weights)", "weight load"),
            ("Llama-3.2 (3B-class)", "engine init total (profile+KV alloc+warmup; graph capture 17 s)"),
        ),
        "no 8B-specific measurement: the 3B-class vLLM V1 start-up (weight load + engine init) is used; the "
        "source notes the first response came only after ~59 s",
    ),
    "llama-3.2-3b": _ModelFacts(
        "Llama-3.2-3B",
        "Llama-3.2-3B",
        (
            ("Llama-3.2 (3B-class; 3.4 GiB weights)", "weight load"),
            ("Llama-3.2 (3B-class)", "engine init total (profile+KV alloc+warmup; graph capture 17 s)"),
        ),
        "vLLM V1 with cached torch.compile; the source notes the first response came only after ~59 s",
    ),
}


@dataclass(frozen=True, slots=True)
class _Spec:
    file: str
    units: str
    perf_model: str
    hardware: str
    tp: int
    accelerator: str  # display name


_HW_SHORT = {"a100": "a100-80gb", "h100": "h100-80gb", "h100-pcap": "h100-80gb-pcap"}
_HW_DISPLAY = {"a100-80gb": "A100", "h100-80gb": "H100", "h100-80gb-pcap": "H100"}


def _specs() -> dict[str, _Spec]:
    specs: dict[str, _Spec] = {}
    for short, hardware in _HW_SHORT.items():
        for tp in (2, 4, 8):
            specs[f"llama2-70b/{short}/tp{tp}"] = _Spec(
                "splitwise_sim_perf_model.csv", "splitwise", "llama2-70b", hardware, tp, _HW_DISPLAY[hardware]
            )
    for model, stem in (("llama3.1-8b", "Llama-3.1-8B"), ("llama3.2-3b", "Llama-3.2-3B")):
        for tp in (2, 4):
            specs[f"{model}/a100/tp{tp}"] = _Spec(
                f"sageserve_{stem}-tp-{tp}.csv", "sageserve", stem, "a100-80gb", tp, "A100"
            )
    return specs


_SPECS = _specs()


@dataclass(frozen=True, slots=True)
class LooPoint:
    """One leave-one-out check: the curve rebuilt without a measured point, evaluated at it.

    Attributes:
        curve: ``"prefill"`` (x = batch tokens), ``"decode_batch"`` (x = batch size), ``"decode_context"``
            (x = context tokens).
        x: the left-out point's x.
        measured_s: the measured median (seconds).
        predicted_s: the curve without that point, at x (seconds).
        extrapolated: True when the left-out point was an end point (so the prediction is an extrapolation).
    """

    curve: str
    x: float
    measured_s: float
    predicted_s: float
    extrapolated: bool

    @property
    def error(self) -> float:
        """Relative error (predicted − measured) / measured."""
        return (self.predicted_s - self.measured_s) / self.measured_s


@dataclass(slots=True, eq=False)
class MeasuredProfile:
    """A :class:`~autoscaler.core.profile.PerformanceProfile` interpolating measured tables.

    Attributes (beyond the protocol's, which are documented there; all times in seconds):
        prefill_curve: seconds vs batch prompt tokens.
        decode_batch_curve: seconds per decode step vs batch size at ``reference_context_tokens``.
        decode_context_curve: seconds per decode step vs mean context at batch size 1.
        reference_context_tokens: context at which the batch sweep was measured (tokens).
        kv_link: ``"inter-node"`` or ``"intra-node"``: which Vidur send/recv measurement the transfer uses.
        kv_transfer_curve: seconds vs bytes sent per GPU pair (TP ranks send their KV shards in parallel).
        kv_bandwidth_bytes_per_s: measured bandwidth at the largest measured message, used beyond it.
        gpu_memory_bytes: memory of one GPU (bytes).
        gpu_memory_utilization: fraction of GPU memory the engine uses.
        weights_bytes: model weights (bytes, BF16) across the replica.
        sources: the files (and rows) the profile comes from.
        cold_start_source: the rows the cold start is summed from, or ``"user override"``.
        price_source: the rows the price is the median of, or ``"user override"``.
        extrapolation_notes: where the profile extrapolates or departs from a measurement, and by which rule.
    """

    name: str
    model: str
    accelerator: str
    gpus_per_replica: int
    kv_bytes_per_token: int
    kv_capacity_tokens: int
    cold_start_s: float
    price_per_gpu_hour: float
    max_batch_size: int
    prefill_curve: Curve
    decode_batch_curve: Curve
    decode_context_curve: Curve
    reference_context_tokens: float
    kv_link: str
    kv_transfer_curve: Curve
    kv_bandwidth_bytes_per_s: float
    gpu_memory_bytes: float
    gpu_memory_utilization: float
    weights_bytes: float
    sources: tuple[str, ...]
    cold_start_source: str
    price_source: str
    extrapolation_notes: tuple[str, ...]

    def prefill_time_s(self, tokens: float) -> float:
        """Seconds to prefill a batch totalling ``tokens`` prompt tokens on one replica."""
        return self.prefill_curve(tokens)

    def decode_step_s(self, batch_size: float, context_tokens: float) -> float:
        """Seconds for one decode iteration of ``batch_size`` sequences of mean context ``context_tokens``."""
        base = self.decode_batch_curve(batch_size)
        ref = self.decode_context_curve(self.reference_context_tokens)
        return base * self.decode_context_curve(context_tokens) / ref

    def kv_transfer_s(self, tokens: float) -> float:
        """Seconds to move the KV cache of ``tokens`` tokens from a prefill to a decode replica.

        Each of the ``gpus_per_replica`` tensor-parallel ranks holds ``1/TP`` of the KV heads and sends its
        shard to its counterpart in parallel, so the time is that of one message of
        ``tokens × kv_bytes_per_token / TP`` bytes.
        """
        if tokens <= 0:
            return 0.0
        per_gpu = tokens * self.kv_bytes_per_token / self.gpus_per_replica
        curve = self.kv_transfer_curve
        if per_gpu <= curve.x_max:
            return curve(per_gpu)
        return curve.ys[-1] + (per_gpu - curve.x_max) / self.kv_bandwidth_bytes_per_s


# ---------------------------------------------------------------------------------------------- parsed tables


@lru_cache(maxsize=16)
def _perf_rows(path: Path) -> tuple[Row, ...]:
    return tuple(read_rows(path, _PERF_COLUMNS))


@lru_cache(maxsize=1)
def _model_rows() -> dict[str, Row]:
    rows: dict[str, Row] = {}
    for file in ("kv_cache_bytes_per_token.csv", "model_shapes_extra.csv"):
        for row in read_rows(DATA_DIR / file, _KV_COLUMNS):
            rows[row.text("model")] = row
    return rows


@lru_cache(maxsize=1)
def _cold_rows() -> tuple[Row, ...]:
    return tuple(read_rows(DATA_DIR / "cold_start_reference.csv", _COLD_COLUMNS))


@lru_cache(maxsize=1)
def _accelerators() -> dict[str, Row]:
    return {row.text("accelerator"): row for row in read_rows(DATA_DIR / "accelerators.csv", _ACCEL_COLUMNS)}


@lru_cache(maxsize=4)
def _network_curve(device: str, devices_per_node: int) -> tuple[Curve, float, str]:
    """(seconds vs bytes per message, bandwidth at the largest message in B/s, source) from Vidur send/recv.

    Vidur's ``size`` is the number of elements of a float16 buffer (``torch.empty(size=(size,),
    dtype=torch.float16)`` in vidur/profiling/collectives/collectives_impl.py), so bytes = 2 × size; times are
    milliseconds.
    """
    file = f"vidur_network_{device}_dgx_send_recv.csv"
    points = []
    for row in read_rows(DATA_DIR / file, _NET_COLUMNS):
        if (
            row.int("num_workers", minimum=1) == 2
            and row.int("devices_per_node", minimum=1) == devices_per_node
        ):
            points.append((2.0 * row.int("size", minimum=1), row.float("time_stats.send_recv.median") / 1e3))
    curve = Curve.from_points(points, hold_below=True, monotone="isotonic")
    bandwidth = curve.x_max / curve.ys[-1]
    return curve, bandwidth, f"{file} (devices_per_node={devices_per_node}, median column)"


# ----------------------------------------------------------------------------------------------- construction


@dataclass(frozen=True, slots=True)
class _Curves:
    prefill: Curve
    batch: Curve
    context: Curve
    ref_context: float


def _curves(rows: list[Row], units: str, source: str) -> _Curves:
    """Turn perf rows (one model × hardware × TP) into the three curves, in seconds."""
    prefill_pts: list[tuple[float, float]] = []
    decode: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)  # (prompt, tokens) → (bs, s)
    context_pts: list[tuple[float, float]] = []
    batched = units == "splitwise"
    for row in rows:
        prompt = row.int("prompt_size", minimum=1)
        batch = row.int("batch_size", minimum=1)
        tokens = row.int("token_size", minimum=1)
        prompt_time = row.float("prompt_time", allow_equal=False)
        token_time = row.float("token_time", allow_equal=False)
        if units == "splitwise":
            prompt_s, step_s = prompt_time / 1e3, token_time / 1e3
        else:
            prompt_s, step_s = prompt_time, token_time / tokens
        # SageServe's batched prompt_time does not grow with the batch (16k tokens of an 8B model in 48 ms
        # would need > 5 PFLOP/s), so it is not the batch's prefill time: only its batch-1 rows are used.
        if batched or batch == 1:
            prefill_pts.append((float(prompt * batch), prompt_s))
        decode[(prompt, tokens)].append((batch, step_s))
        if batch == 1:
            # token_time averages the steps of a sequence whose context grows from prompt to prompt+tokens.
            context_pts.append((prompt + tokens / 2.0, step_s))
    if not prefill_pts:
        raise InputError("no prefill measurements (rows with batch_size 1)", source=source)
    # The batch sweep is the (prompt, output) pair measured at the most distinct batch sizes.
    ref_pair = max(decode, key=lambda pair: (len({b for b, _ in decode[pair]}), -pair[0], -pair[1]))
    batch_pts = decode[ref_pair]
    if len({b for b, _ in batch_pts}) < 2:
        raise InputError(
            "expected a batch-size sweep: at least two batch_size values at the same prompt_size and "
            "token_size",
            source=source,
        )
    if not context_pts:
        raise InputError("no batch_size 1 rows: the decode context sweep needs them", source=source)
    return _Curves(
        prefill=Curve.from_points(prefill_pts),
        batch=Curve.from_points(((float(b), s) for b, s in batch_pts), hold_below=True),
        context=Curve.from_points(context_pts, hold_below=True, monotone="isotonic"),
        ref_context=ref_pair[0] + ref_pair[1] / 2.0,
    )


def _check_positive(value: float | None, what: str, *, allow_zero: bool) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"expected a finite number {bound}, got {value!r}", source=what)


def _cold_start(facts: _ModelFacts) -> tuple[float, str]:
    total = 0.0
    used = []
    for model, phase in facts.cold_start:
        match = [r for r in _cold_rows() if r.text("model") == model and r.text("phase") == phase]
        if not match:
            raise InputError(
                f"cold-start row ({model!r}, {phase!r}) not found", source="cold_start_reference.csv"
            )
        seconds = match[0].float("seconds")
        total += seconds
        used.append(f"{phase} {seconds:g} s")
    first = next(r for r in _cold_rows() if r.text("model") == facts.cold_start[0][0])
    source = (
        f"cold_start_reference.csv, {facts.cold_start[0][0]}: "
        + " + ".join(used)
        + f" ({first.text('source')}, {first.text('source_date')}); {facts.cold_note}"
    )
    return total, source


def _model_facts(perf_model: str, source: str) -> _ModelFacts:
    key = perf_model.lower().replace("llama3", "llama-3")
    if key not in _MODELS:
        raise InputError(
            f"model {perf_model!r} is not in the catalogue ({', '.join(sorted(_MODELS))}): pass "
            "kv_bytes_per_token=, weights_bytes= and cold_start_s=",
            source=source,
        )
    return _MODELS[key]


def _build(
    *,
    name: str,
    rows: list[Row],
    units: str,
    source: str,
    model_display: str,
    accelerator: str,
    tp: int,
    kv_bytes_per_token: int,
    weights_bytes: float,
    gpu_memory_bytes: float,
    gpu_memory_utilization: float,
    cold_start: tuple[float, str],
    price: tuple[float, str],
    network_device: str,
    kv_link: str,
    extra_sources: tuple[str, ...],
    extra_notes: tuple[str, ...] = (),
) -> MeasuredProfile:
    if kv_link not in KV_LINKS:
        raise InputError(f"expected one of {', '.join(KV_LINKS)}, got {kv_link!r}", source="kv_link")
    curves = _curves(rows, units, source)
    net_curve, bandwidth, net_source = _network_curve(network_device, KV_LINKS[kv_link])
    usable = gpu_memory_bytes * tp * gpu_memory_utilization - weights_bytes
    if usable <= 0:
        raise InputError(
            f"the weights ({weights_bytes / 1e9:.1f} GB) do not fit in "
            f"{tp} × {gpu_memory_bytes / 1e9:.0f} GB × {gpu_memory_utilization}: no room for a KV cache",
            source=source,
        )
    capacity = int(usable // kv_bytes_per_token)
    notes = _notes(curves, net_curve, bandwidth, net_source) + extra_notes
    return MeasuredProfile(
        name=name,
        model=model_display,
        accelerator=accelerator,
        gpus_per_replica=tp,
        kv_bytes_per_token=kv_bytes_per_token,
        kv_capacity_tokens=capacity,
        cold_start_s=cold_start[0],
        price_per_gpu_hour=price[0],
        max_batch_size=int(curves.batch.x_max),
        prefill_curve=curves.prefill,
        decode_batch_curve=curves.batch,
        decode_context_curve=curves.context,
        reference_context_tokens=curves.ref_context,
        kv_link=kv_link,
        kv_transfer_curve=net_curve,
        kv_bandwidth_bytes_per_s=bandwidth,
        gpu_memory_bytes=gpu_memory_bytes,
        gpu_memory_utilization=gpu_memory_utilization,
        weights_bytes=weights_bytes,
        sources=(source, *extra_sources, net_source),
        cold_start_source=cold_start[1],
        price_source=price[1],
        extrapolation_notes=notes,
    )


def _notes(curves: _Curves, net: Curve, bandwidth: float, net_source: str) -> tuple[str, ...]:
    p, b, c = curves.prefill, curves.batch, curves.context
    notes = [
        f"prefill above {p.x_max:g} batch tokens: linear continuation of the last two measured points "
        f"({p.xs[-2]:g}, {p.x_max:g} tokens); attention is quadratic in prompt length, so long prompts are "
        "likely underestimated",
        f"prefill below {p.x_min:g} tokens: linear continuation of the first two measured points "
        f"({p.x_min:g}, {p.xs[1]:g} tokens), floored at 0",
        f"decode batch above {b.x_max:g}: linear continuation of the last two measured batch sizes "
        f"({b.xs[-2]:g}, {b.x_max:g})",
        f"decode context above {c.x_max:g} tokens: linear continuation of the last two measured "
        "contexts; below "
        f"{c.x_min:g} tokens: held at the first measured value (weights dominate short contexts)",
        f"decode off the measured axes (batch > 1 and context != {curves.ref_context:g}): the "
        "measurements form a "
        "star, not a grid; step(b, c) = B(b) * C(c) / C(ref) assumes batch and context act separably",
        f"KV transfer above {net.x_max / 1e6:.0f} MB per GPU: last measured time + extra bytes / "
        f"{bandwidth / 1e9:.1f} GB/s (bandwidth measured at the largest message, {net_source})",
    ]
    for label, curve, unit in (("prefill", p, "tokens"), ("decode batch", b, "batch")):
        if curve.dropped:
            pts = ", ".join(f"{x:g} {unit}: {y * 1e3:.2f} ms" for x, y in curve.dropped)
            notes.append(f"{label}: measured medians below an earlier point left out as outliers ({pts})")
    if c.dropped:
        worst = max(abs(c(x) - y) / y for x, y in c.dropped)
        notes.append(
            f"decode context: isotonic fit moves {len(c.dropped)} of {len(c.xs)} measured medians "
            f"(largest change {worst:.1%}): step time is flat with context within noise here"
        )
    if net.dropped:
        worst = max(abs(net(x) - y) / y for x, y in net.dropped)
        notes.append(
            f"KV transfer: isotonic fit moves {len(net.dropped)} of {len(net.xs)} measured sizes "
            f"(largest change {worst:.0%}, small messages are latency-bound and noisy)"
        )
    return tuple(notes)


# ---------------------------------------------------------------------------------------------------
# public API


def profile_names() -> list[str]:
    """Names of the bundled profiles, e.g. ``"llama2-70b/h100/tp4"`` (``model/gpu/tpN``), sorted."""
    return sorted(_SPECS)


@lru_cache(maxsize=64)
def _bundled(name: str, kv_link: str) -> MeasuredProfile:
    spec = _SPECS[name]
    path = DATA_DIR / spec.file
    rows = [
        r
        for r in _perf_rows(path)
        if r.text("model") == spec.perf_model
        and r.text("hardware") == spec.hardware
        and r.text("tensor_parallel") == str(spec.tp)
    ]
    facts = _model_facts(spec.perf_model, str(path))
    model_row = _model_rows()[facts.key]
    accel = _accelerators()[spec.hardware]
    gpu_prefix = accel.text("price_gpu_prefix")
    return _build(
        name=name,
        rows=rows,
        units=spec.units,
        source=f"{spec.file} (model={spec.perf_model}, hardware={spec.hardware}, tensor_parallel={spec.tp})",
        model_display=facts.display,
        accelerator=spec.accelerator,
        tp=spec.tp,
        kv_bytes_per_token=model_row.int("kv_bytes_per_token_bf16", minimum=1),
        weights_bytes=model_row.float("weights_GB_bf16") * 1e9,
        gpu_memory_bytes=accel.float("memory_bytes", allow_equal=False),
        gpu_memory_utilization=GPU_MEMORY_UTILIZATION,
        cold_start=_cold_start(facts),
        price=default_price(gpu_prefix),
        network_device=spec.hardware[:4],
        kv_link=kv_link,
        extra_sources=(
            f"kv_cache_bytes_per_token.csv / model_shapes_extra.csv row {facts.key} "
            f"({model_row.text('config_source')})",
            f"accelerators.csv row {spec.hardware} ({accel.text('source')})",
        ),
    )


def load_profile(
    name: str,
    *,
    price_per_gpu_hour: float | None = None,
    cold_start_s: float | None = None,
    kv_link: str = "inter-node",
) -> MeasuredProfile:
    """Load a bundled profile by name (see :func:`profile_names`).

    Args:
        name: e.g. ``"llama2-70b/h100/tp4"``.
        price_per_gpu_hour: override the default price (USD per GPU-hour, >= 0).
        cold_start_s: override the cold start (seconds, >= 0).
        kv_link: ``"inter-node"`` (default) or ``"intra-node"``: which measured link the prefill→decode KV
            transfer uses.

    Raises:
        InputError: unknown name (the message lists the known ones) or an invalid override.
    """
    if name not in _SPECS:
        raise InputError(
            f"unknown profile {name!r}: expected one of {', '.join(profile_names())}", source="profile"
        )
    if kv_link not in KV_LINKS:
        raise InputError(f"expected one of {', '.join(KV_LINKS)}, got {kv_link!r}", source="kv_link")
    _check_positive(price_per_gpu_hour, "price_per_gpu_hour", allow_zero=True)
    _check_positive(cold_start_s, "cold_start_s", allow_zero=True)
    # The cached profile is shared: hand out a copy (its curves are immutable) so overrides stay local.
    profile = dataclasses.replace(_bundled(name, kv_link))
    return _override(profile, price_per_gpu_hour, cold_start_s)


def _override(profile: MeasuredProfile, price: float | None, cold_start: float | None) -> MeasuredProfile:
    if price is not None:
        profile.price_per_gpu_hour = float(price)
        profile.price_source = "user override"
    if cold_start is not None:
        profile.cold_start_s = float(cold_start)
        profile.cold_start_source = "user override"
    return profile


def load_profile_csv(
    path: str | Path,
    *,
    name: str | None = None,
    units: str = "splitwise",
    model: str | None = None,
    hardware: str | None = None,
    tensor_parallel: int | None = None,
    kv_bytes_per_token: int | None = None,
    weights_bytes: float | None = None,
    gpu_memory_bytes: float | None = None,
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
    price_per_gpu_hour: float | None = None,
    cold_start_s: float | None = None,
    kv_link: str = "inter-node",
) -> MeasuredProfile:
    """Build a profile from a user-supplied CSV in the Splitwise schema.

    The file needs the columns ``model,hardware,prompt_size,batch_size,token_size,prompt_time,token_time,
    tensor_parallel`` (others are ignored): a prompt-size sweep and a batch-size sweep, as Splitwise measures.
    ``units="splitwise"``: times in ms, ``token_time`` per decode step; ``units="sageserve"``: times in s,
    ``token_time`` for all ``token_size`` steps. ``model``/``hardware``/``tensor_parallel`` select rows
    when the
    file holds several configurations. Model facts (KV bytes, weights, cold start) and GPU facts (memory,
    price)
    default to the catalogue's when the file's model / hardware are known, and must be passed otherwise.

    Raises:
        InputError: a malformed file (file:line and what was expected), an ambiguous or empty selection, or a
            missing fact.
    """
    path = Path(path)
    source = str(path)
    if units not in UNITS:
        raise InputError(f"expected one of {', '.join(UNITS)}, got {units!r}", source="units")
    if not 0 < gpu_memory_utilization <= 1:
        raise InputError(
            f"expected a fraction in (0, 1], got {gpu_memory_utilization!r}", source="gpu_memory_utilization"
        )
    for value, what in ((price_per_gpu_hour, "price_per_gpu_hour"), (cold_start_s, "cold_start_s")):
        _check_positive(value, what, allow_zero=True)
    for value, what in (
        (kv_bytes_per_token, "kv_bytes_per_token"),
        (weights_bytes, "weights_bytes"),
        (gpu_memory_bytes, "gpu_memory_bytes"),
    ):
        _check_positive(value, what, allow_zero=what == "weights_bytes")
    rows = list(read_rows(path, _PERF_COLUMNS))
    for row in rows:  # validate every row up front so the error names the first bad line
        row.int("tensor_parallel", minimum=1)
    rows = [
        r
        for r in rows
        if (model is None or r.text("model") == model)
        and (hardware is None or r.text("hardware") == hardware)
        and (tensor_parallel is None or int(r.text("tensor_parallel")) == tensor_parallel)
    ]
    combos = sorted({(r.text("model"), r.text("hardware"), int(r.text("tensor_parallel"))) for r in rows})
    if len(combos) != 1:
        what = (
            "no rows match"
            if not combos
            else "several configurations: "
            + "; ".join(f"model={m} hardware={h} tensor_parallel={t}" for m, h, t in combos)
        )
        raise InputError(f"{what}: select one with model=, hardware= and tensor_parallel=", source=source)
    file_model, file_hw, tp = combos[0]
    facts: _ModelFacts | None = None
    if kv_bytes_per_token is None or weights_bytes is None or cold_start_s is None:
        facts = _model_facts(file_model, source)
    model_row = _model_rows()[facts.key] if facts is not None else None
    kv_bytes = (
        kv_bytes_per_token
        if kv_bytes_per_token is not None
        else (model_row.int("kv_bytes_per_token_bf16", minimum=1) if model_row else 0)
    )
    weights = (
        weights_bytes
        if weights_bytes is not None
        else (model_row.float("weights_GB_bf16") * 1e9 if model_row else 0.0)
    )
    accel = _accelerators().get(file_hw)
    if gpu_memory_bytes is None and accel is None:
        raise InputError(
            f"hardware {file_hw!r} is not in the catalogue ({', '.join(sorted(_accelerators()))}): pass "
            "gpu_memory_bytes= and price_per_gpu_hour=",
            source=source,
        )
    memory = (
        gpu_memory_bytes if gpu_memory_bytes is not None else (accel.float("memory_bytes") if accel else 0.0)
    )
    if price_per_gpu_hour is not None:
        price = (price_per_gpu_hour, "user override")
    elif accel is not None:
        price = default_price(accel.text("price_gpu_prefix"))
    else:
        raise InputError("pass price_per_gpu_hour= for hardware outside the catalogue", source=source)
    cold = (
        (cold_start_s, "user override")
        if cold_start_s is not None
        else _cold_start(facts if facts is not None else _model_facts(file_model, source))
    )
    device = file_hw[:4] if file_hw[:4] in ("a100", "h100") else "h100"
    net_note = (
        ()
        if device == file_hw[:4]
        else (f"KV transfer: no send/recv measurement for {file_hw}; the H100 DGX measurement is used",)
    )
    return _build(
        name=name or f"{file_model}/{file_hw}/tp{tp}",
        rows=rows,
        units=units,
        source=f"{source} (model={file_model}, hardware={file_hw}, tensor_parallel={tp})",
        model_display=facts.display if facts else file_model,
        accelerator=_HW_DISPLAY.get(file_hw, file_hw),
        tp=tp,
        kv_bytes_per_token=kv_bytes,
        weights_bytes=weights,
        gpu_memory_bytes=memory,
        gpu_memory_utilization=gpu_memory_utilization,
        cold_start=cold,
        price=price,
        network_device=device,
        kv_link=kv_link,
        extra_sources=(),
        extra_notes=net_note,
    )


def leave_one_out(profile: MeasuredProfile) -> list[LooPoint]:
    """Leave-one-out validation of a profile's three curves.

    For each kept measured point of each curve with at least three points, rebuild the curve without it and
    evaluate it there. Interior points test interpolation; the two end points test the extrapolation rules.
    """
    out: list[LooPoint] = []
    for label, curve in (
        ("prefill", profile.prefill_curve),
        ("decode_batch", profile.decode_batch_curve),
        ("decode_context", profile.decode_context_curve),
    ):
        n = len(curve.xs)
        if n < 3:
            continue
        for i in range(n):
            out.append(
                LooPoint(label, curve.xs[i], curve.ys[i], curve.without(i)(curve.xs[i]), i in (0, n - 1))
            )
    return out
