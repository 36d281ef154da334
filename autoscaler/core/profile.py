"""The performance profile of one serving configuration (model × accelerator × tensor parallelism).

The capacity model in the core and the fleet model in the digital twin both read a profile through this
protocol, so the twin and the controller agree on what a replica can do. Implementations interpolate measured
tables (``autoscaler.catalog``); they never invent constants, and say where they extrapolate.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["PerformanceProfile"]


class PerformanceProfile(Protocol):
    """What one replica of a configuration can do, from measurements.

    Attributes:
        name: catalogue key, e.g. ``"llama2-70b/h100/tp4"``.
        model: model name, e.g. ``"Llama2-70B"``.
        accelerator: accelerator type, e.g. ``"H100"``.
        gpus_per_replica: GPUs one replica occupies (the tensor-parallel degree).
        kv_bytes_per_token: KV-cache bytes per token (all layers, K and V).
        kv_capacity_tokens: tokens of KV cache one replica holds after weights and activations.
        cold_start_s: seconds from a replica being requested to it serving (image pull excluded).
        price_per_gpu_hour: on-demand price per GPU-hour, USD.
        max_batch_size: largest decode batch the measurements cover and the engine allows.
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

    def prefill_time_s(self, tokens: float) -> float:
        """Seconds to prefill a batch totalling ``tokens`` prompt tokens on one replica."""
        ...

    def decode_step_s(self, batch_size: float, context_tokens: float) -> float:
        """Seconds for one decode iteration of ``batch_size`` sequences of mean context ``context_tokens``."""
        ...

    def kv_transfer_s(self, tokens: float) -> float:
        """Seconds to move the KV cache of ``tokens`` tokens from a prefill to a decode replica."""
        ...

    def __hash__(self) -> int:
        """Profiles are immutable and hashable: the capacity model memoises on them."""
        ...
