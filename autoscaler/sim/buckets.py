"""vLLM's Prometheus histogram bucket boundaries (upper bounds, seconds; ``+Inf`` is implicit).

Copied from vLLM V1's Prometheus logger, ``vllm/v1/metrics/loggers.py`` (vllm-project/vllm @ 005a810b,
``PrometheusStatLogger.__init__``): ``vllm:time_to_first_token_seconds``,
``vllm:inter_token_latency_seconds`` (same list as the deprecated ``vllm:time_per_output_token_seconds``)
and ``request_latency_buckets`` used by ``vllm:e2e_request_latency_seconds``.
"""

from __future__ import annotations

__all__ = ["E2E_BUCKETS", "ITL_BUCKETS", "TTFT_BUCKETS"]

TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
    80.0, 160.0, 640.0, 2560.0,
)
ITL_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)
E2E_BUCKETS: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
    960.0, 1920.0, 7680.0,
)
