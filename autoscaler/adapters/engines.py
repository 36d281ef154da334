"""Engine metric maps: which Prometheus series carry each signal, per inference engine, as data.

The Prometheus metrics source never branches on the engine; it reads one :class:`EngineMetrics` and builds
the same queries for every engine. Each signal lists its metric names in order of preference: the first is
the current name, later ones are older names that the engine used before (a pod that still exports an old
name is read through it, and where a pod exports both, the first wins).

Spelling: engines written against ``prometheus_client`` name their metrics ``vllm:...``; Prometheus 2.x
scraping ``prometheus_client`` ≥ 0.23 with content negotiation may store them as ``vllm_...`` (colons are
turned into underscores when the client offers the UTF-8 / OpenMetrics 1.x escaping). Every name is therefore
matched in both spellings (:meth:`EngineMetrics.spellings`).

Sources (looked up for this map; cite them when updating):

* vLLM V1: ``vllm/v1/metrics/loggers.py`` (``PrometheusStatLogger``) — ``vllm:num_requests_running``,
  ``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc`` (was ``vllm:gpu_cache_usage_perc`` before
  v0.10), ``vllm:time_to_first_token_seconds``, ``vllm:inter_token_latency_seconds`` (was
  ``vllm:time_per_output_token_seconds``), ``vllm:e2e_request_latency_seconds``, ``vllm:prompt_tokens_total``,
  ``vllm:generation_tokens_total``, ``vllm:request_success_total`` (label ``finished_reason``).
* SGLang: ``python/sglang/srt/metrics/collector.py`` (``SchedulerMetricsCollector``,
  ``TokenizerMetricsCollector``) — ``sglang:num_running_reqs``, ``sglang:num_queue_reqs``,
  ``sglang:token_usage`` (KV-pool fraction), ``sglang:time_to_first_token_seconds``,
  ``sglang:inter_token_latency_seconds`` (older releases: ``sglang:time_per_output_token_seconds``),
  ``sglang:e2e_request_latency_seconds``, ``sglang:prompt_tokens_total``, ``sglang:generation_tokens_total``,
  ``sglang:num_requests_total``.
* NVIDIA Dynamo frontend: ``lib/runtime/src/metrics/prometheus_names.rs`` (``frontend_service``) —
  ``dynamo_frontend_time_to_first_token_seconds``, ``dynamo_frontend_inter_token_latency_seconds``,
  ``dynamo_frontend_request_duration_seconds``, ``dynamo_frontend_queued_requests``,
  ``dynamo_frontend_inflight_requests``, ``dynamo_frontend_requests_total``,
  ``dynamo_frontend_output_tokens_total``, ``dynamo_frontend_input_sequence_tokens`` (histogram; its ``_sum``
  counts prompt tokens); worker KV utilisation ``dynamo_component_kvstats_gpu_cache_usage_percent``
  (``kvstats`` module of the same file).
* TensorRT-LLM (``trtllm-serve``'s ``MetricsCollector``, ``tensorrt_llm/metrics/collector.py``; Dynamo's
  ``docs/backends/trtllm/prometheus.md`` lists the five metrics of 1.1): ``trtllm_request_success_total``,
  ``trtllm_e2e_request_latency_seconds``, ``trtllm_time_to_first_token_seconds``,
  ``trtllm_time_per_output_token_seconds``, ``trtllm_request_queue_time_seconds``. Older Dynamo releases
  prefixed them ``trtllm:``; both are accepted. TensorRT-LLM exports **no** queue-depth, running,
  KV-utilisation or token counters to Prometheus: those signals are ``None`` with a note
  ("not exported by trtllm").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from autoscaler.errors import InputError

__all__ = [
    "ENGINES",
    "EngineMetrics",
    "Signal",
    "SignalKind",
    "engine_metrics",
]


class SignalKind(StrEnum):
    """How a signal is read from Prometheus."""

    HISTOGRAM = "histogram"  # percentile from ``rate(<name>_bucket[window])``
    GAUGE = "gauge"  # latest value
    COUNTER = "counter"  # ``rate(<name>[window])``


class Signal(StrEnum):
    """The signals the metrics source reads; names match the ``RoleObservation`` fields they fill."""

    TTFT = "ttft"
    ITL = "itl"
    E2E = "e2e"
    QUEUE = "queue_depth"
    RUNNING = "running"
    KV = "kv_utilization"
    ARRIVALS = "arrival_rate"
    PROMPT_TOKENS = "prompt_tokens_rate"
    GENERATION_TOKENS = "generation_tokens_rate"


SIGNAL_KIND: Mapping[Signal, SignalKind] = {
    Signal.TTFT: SignalKind.HISTOGRAM,
    Signal.ITL: SignalKind.HISTOGRAM,
    Signal.E2E: SignalKind.HISTOGRAM,
    Signal.QUEUE: SignalKind.GAUGE,
    Signal.RUNNING: SignalKind.GAUGE,
    Signal.KV: SignalKind.GAUGE,
    Signal.ARRIVALS: SignalKind.COUNTER,
    Signal.PROMPT_TOKENS: SignalKind.COUNTER,
    Signal.GENERATION_TOKENS: SignalKind.COUNTER,
}


def _spellings(name: str) -> tuple[str, ...]:
    """``vllm:x`` and ``vllm_x``: the exposition name and the one Prometheus 2.x may store."""
    if ":" in name:
        return (name, name.replace(":", "_"))
    return (name,)


@dataclass(frozen=True, slots=True)
class EngineMetrics:
    """Where one engine publishes each signal.

    Attributes:
        engine: engine key as written in the custom resource (``vllm``, ``sglang``, ``dynamo``, ``trtllm``).
        names: per signal, metric names in order of preference (histograms without the ``_bucket`` suffix,
            counters with their ``_total``). A signal absent here is not exported by the engine.
        heartbeat: metric names whose newest sample timestamp says whether a pod is reporting; they must be
            exported by every pod from start-up (a gauge is best).
        sources: upstream files the names were taken from, for whoever updates the map.
        arrivals_at_completion: the ``arrival_rate`` counter counts requests when they *finish*
            (vLLM's and TensorRT-LLM's ``request_success_total``). On the entry role (prefill or aggregated)
            the source then reads arrivals as the rate of first tokens, ``rate(<ttft histogram>_count)`` —
            requests the role has started — which lags arrivals by one TTFT instead of a whole request,
            and exists on a disaggregated prefill replica, whose requests complete on the decode side.
            False once ``arrival_rate`` is overridden (the named counter is used as it is).
    """

    engine: str
    names: Mapping[Signal, tuple[str, ...]]
    heartbeat: tuple[str, ...]
    sources: tuple[str, ...] = field(default=())
    arrivals_at_completion: bool = False

    def spellings(self, signal: Signal) -> tuple[tuple[str, ...], ...]:
        """Per preferred name, the spellings to match (``vllm:x``, ``vllm_x``); empty if not exported."""
        return tuple(_spellings(n) for n in self.names.get(signal, ()))

    def heartbeat_spellings(self) -> tuple[str, ...]:
        """All spellings of the heartbeat metric names."""
        return tuple(s for n in self.heartbeat for s in _spellings(n))

    def with_overrides(self, overrides: Mapping[str, str]) -> EngineMetrics:
        """A copy where ``overrides`` (signal value → metric name, e.g. ``{"ttft": "my_ttft_seconds"}``)
        replaces the engine's names; an override name is the only one matched for that signal.

        Raises:
            InputError: an override key is not a known signal or ``heartbeat``.
        """
        if not overrides:
            return self
        names = dict(self.names)
        heartbeat = self.heartbeat
        at_completion = self.arrivals_at_completion and Signal.ARRIVALS.value not in overrides
        valid = {s.value for s in Signal} | {"heartbeat"}
        for key, metric in overrides.items():
            if key not in valid:
                raise InputError(
                    f"unknown metric override {key!r}; expected one of {sorted(valid)}",
                    source="spec.metrics.metricOverrides",
                )
            if not metric:
                raise InputError(f"metric override {key!r} is empty", source="spec.metrics.metricOverrides")
            if key == "heartbeat":
                heartbeat = (metric,)
            else:
                names[Signal(key)] = (metric,)
        return replace(self, names=names, heartbeat=heartbeat, arrivals_at_completion=at_completion)


VLLM = EngineMetrics(
    engine="vllm",
    names={
        Signal.TTFT: ("vllm:time_to_first_token_seconds",),
        Signal.ITL: ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        Signal.E2E: ("vllm:e2e_request_latency_seconds",),
        Signal.QUEUE: ("vllm:num_requests_waiting",),
        Signal.RUNNING: ("vllm:num_requests_running",),
        Signal.KV: ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        Signal.ARRIVALS: ("vllm:request_success_total",),
        Signal.PROMPT_TOKENS: ("vllm:prompt_tokens_total",),
        Signal.GENERATION_TOKENS: ("vllm:generation_tokens_total",),
    },
    heartbeat=("vllm:num_requests_running",),
    sources=("vllm/v1/metrics/loggers.py",),
    arrivals_at_completion=True,
)

SGLANG = EngineMetrics(
    engine="sglang",
    names={
        Signal.TTFT: ("sglang:time_to_first_token_seconds",),
        Signal.ITL: ("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
        Signal.E2E: ("sglang:e2e_request_latency_seconds",),
        Signal.QUEUE: ("sglang:num_queue_reqs",),
        Signal.RUNNING: ("sglang:num_running_reqs",),
        Signal.KV: ("sglang:token_usage",),
        Signal.ARRIVALS: ("sglang:num_requests_total",),
        Signal.PROMPT_TOKENS: ("sglang:prompt_tokens_total",),
        Signal.GENERATION_TOKENS: ("sglang:generation_tokens_total",),
    },
    heartbeat=("sglang:num_running_reqs",),
    sources=("python/sglang/srt/metrics/collector.py",),
)

DYNAMO = EngineMetrics(
    engine="dynamo",
    names={
        Signal.TTFT: ("dynamo_frontend_time_to_first_token_seconds",),
        Signal.ITL: ("dynamo_frontend_inter_token_latency_seconds",),
        Signal.E2E: ("dynamo_frontend_request_duration_seconds",),
        Signal.QUEUE: ("dynamo_frontend_queued_requests",),
        Signal.RUNNING: ("dynamo_frontend_inflight_requests",),
        Signal.KV: ("dynamo_component_kvstats_gpu_cache_usage_percent",),
        Signal.ARRIVALS: ("dynamo_frontend_requests_total",),
        Signal.PROMPT_TOKENS: ("dynamo_frontend_input_sequence_tokens_sum",),
        Signal.GENERATION_TOKENS: ("dynamo_frontend_output_tokens_total",),
    },
    # Frontend pods export the gauges, worker pods export kvstats: either proves the pod is scraped.
    heartbeat=("dynamo_frontend_inflight_requests", "dynamo_component_kvstats_gpu_cache_usage_percent"),
    sources=("lib/runtime/src/metrics/prometheus_names.rs",),
)

TRTLLM = EngineMetrics(
    engine="trtllm",
    names={
        # Written ``trtllm:``; matched in both spellings, so Dynamo's ``trtllm_`` prefix is read as well.
        Signal.TTFT: ("trtllm:time_to_first_token_seconds",),
        Signal.ITL: ("trtllm:time_per_output_token_seconds",),
        Signal.E2E: ("trtllm:e2e_request_latency_seconds",),
        Signal.ARRIVALS: ("trtllm:request_success_total",),
        # No queue depth, running, KV utilisation or token counters are exported by TensorRT-LLM.
    },
    # Histogram series are written on every scrape once a request was served; the _count series is the
    # cheapest one to time-stamp.
    heartbeat=("trtllm:time_to_first_token_seconds_count",),
    sources=("tensorrt_llm/metrics/collector.py", "dynamo docs/backends/trtllm/prometheus.md"),
    arrivals_at_completion=True,
)

ENGINES: Mapping[str, EngineMetrics] = {m.engine: m for m in (VLLM, SGLANG, DYNAMO, TRTLLM)}


def engine_metrics(engine: str, overrides: Mapping[str, str] | None = None) -> EngineMetrics:
    """The metric map of ``engine`` with per-resource ``overrides`` applied.

    Raises:
        InputError: unknown engine or override key (names ``spec.metrics.engine`` and what is accepted).
    """
    try:
        base = ENGINES[engine]
    except KeyError:
        raise InputError(
            f"unknown engine {engine!r}; expected one of {sorted(ENGINES)}", source="spec.metrics.engine"
        ) from None
    return base.with_overrides(overrides or {})
