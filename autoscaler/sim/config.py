"""Configuration of one simulated fleet: shape per role, SLO, control and scrape cadence, engine knobs.

Everything that the twin needs besides the trace, the performance profile and the policy lives here, with
units in the names and the reason for each default next to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from autoscaler.core.types import Role
from autoscaler.errors import InputError

__all__ = ["Mode", "RoleShape", "RouterKind", "SimConfig", "default_chunk_tokens"]


class Mode(StrEnum):
    """How the roles are laid out: one aggregated role (``both``) or disaggregated prefill + decode."""

    AGGREGATED = "aggregated"
    DISAGGREGATED = "disaggregated"


class RouterKind(StrEnum):
    """Request routing: least outstanding requests, or prefix-aware (longest cached prefix, then load)."""

    LEAST_OUTSTANDING = "least-outstanding"
    PREFIX_AWARE = "prefix-aware"


@dataclass(frozen=True, slots=True)
class RoleShape:
    """Replica bounds of one role.

    Attributes:
        initial: replicas at t=0 (already Ready: the run starts from a warm fleet).
        min_replicas: lower clamp applied to every policy decision.
        max_replicas: upper clamp applied to every policy decision.
    """

    initial: int
    min_replicas: int = 0
    max_replicas: int = 1_000

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < self.min_replicas:
            raise InputError(
                f"replica bounds must satisfy 0 <= min ({self.min_replicas}) <= max ({self.max_replicas})",
                source="roles",
            )
        if not self.min_replicas <= self.initial <= self.max_replicas:
            raise InputError(
                f"initial replicas {self.initial} outside [{self.min_replicas}, {self.max_replicas}]",
                source="roles",
            )


def default_chunk_tokens(accelerator: str) -> int:
    """vLLM V1's default ``max_num_batched_tokens`` for the OpenAI server on this accelerator.

    ``EngineArgs.get_batch_defaults`` (vllm/engine/arg_utils.py) uses 8192 tokens on GPUs with ≥ 70 GiB
    that are not A100s (H100, H200, MI300X) and 2048 otherwise (A100 regressed with larger budgets).
    """
    return 2048 if "a100" in accelerator.lower() else 8192


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Fleet shape and engine settings of one simulation.

    Attributes:
        mode: aggregated (role ``both``) or disaggregated (roles ``prefill`` and ``decode``).
        roles: replica bounds per role; must name exactly the roles of ``mode``.
        slo_ttft_s: TTFT target, seconds.
        slo_itl_s: ITL target, seconds (per request: mean time between tokens after the first).
        slo_percentile: percentile (0–100) at which the policy observes TTFT/ITL.
        control_interval_s: how often the policy is called, seconds (default 15 s, like the controller).
        scrape_interval_s: Prometheus scrape interval, seconds (default 15 s, the common default).
        rate_window_s: range of ``rate()`` in the policy's queries, seconds (default 1 m).
        router: routing rule.
        chunk_tokens: per-iteration token budget (vLLM ``max_num_batched_tokens``); ``None`` → vLLM's
            default for the profile's accelerator (:func:`default_chunk_tokens`).
        max_batch_size: running-sequence cap per replica (vLLM ``max_num_seqs``); ``None`` → the profile's.
        prefix_block_tokens: tokens per ``hash_ids`` block (Mooncake uses 512).
        prefix_slack: prefix-aware routing prefers the best-cached replica only while its outstanding
            requests exceed the least-loaded replica's by at most this many.
        ctx_quantum_tokens: mean decode context is rounded to this many tokens before the profile is
            evaluated (vLLM's KV block is 16 tokens), so step times can be cached.
        drain_timeout_s: a draining replica that still has work after this long is cut off (the pod's
            termination grace period); its unfinished requests are counted as failed.
        start_time_s: Unix time the trace's t=0 maps to (what ``now`` the policy sees).
        tail_limit_s: after the last arrival, keep simulating at most this long for in-flight requests.
        score_from_s: GPU-hours and scaling actions from this time on (trace seconds) are also reported as
            ``scored`` in the summary, so a warm-up period can be left out of a comparison.
    """

    mode: Mode = Mode.AGGREGATED
    roles: Mapping[Role, RoleShape] = field(default_factory=lambda: {Role.BOTH: RoleShape(initial=1)})
    slo_ttft_s: float = 1.0
    slo_itl_s: float = 0.1
    slo_percentile: float = 95.0
    control_interval_s: float = 15.0
    scrape_interval_s: float = 15.0
    rate_window_s: float = 60.0
    router: RouterKind = RouterKind.LEAST_OUTSTANDING
    chunk_tokens: int | None = None
    max_batch_size: int | None = None
    prefix_block_tokens: int = 512
    prefix_slack: int = 4
    ctx_quantum_tokens: int = 16
    drain_timeout_s: float = 600.0
    start_time_s: float = 0.0
    tail_limit_s: float = 3_600.0
    score_from_s: float = 0.0

    def __post_init__(self) -> None:
        expected = {Role.BOTH} if self.mode is Mode.AGGREGATED else {Role.PREFILL, Role.DECODE}
        if set(self.roles) != expected:
            raise InputError(
                f"{self.mode.value} mode needs roles {sorted(r.value for r in expected)}, "
                f"got {sorted(r.value for r in self.roles)}",
                source="roles",
            )
        for name in ("slo_ttft_s", "slo_itl_s", "control_interval_s", "scrape_interval_s", "rate_window_s"):
            value = getattr(self, name)
            if not value > 0:
                raise InputError(f"must be > 0, got {value}", source=name)
        if not 0 < self.slo_percentile < 100:
            raise InputError(f"must be in (0, 100), got {self.slo_percentile}", source="slo_percentile")
        if self.chunk_tokens is not None and self.chunk_tokens < 1:
            raise InputError(f"must be >= 1, got {self.chunk_tokens}", source="chunk_tokens")
        if self.rate_window_s < 2 * self.scrape_interval_s:
            raise InputError(
                f"rate window {self.rate_window_s}s must cover at least two scrapes "
                f"({self.scrape_interval_s}s apart)",
                source="rate_window_s",
            )

    @property
    def entry_role(self) -> Role:
        """The role new requests are routed to."""
        return Role.BOTH if self.mode is Mode.AGGREGATED else Role.PREFILL
