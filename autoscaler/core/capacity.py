"""Capacity model: what one replica can serve at the SLO, from a measured performance profile.

Prefill (TTFT). Requests of mean prompt length ``L̄`` arrive at ``λ`` per replica (Poisson). The service
time is ``S = prefill(L̄)`` with squared coefficient of variation ``c²`` (from the prompt-length spread;
``c² = 1`` for exponential lengths). The Pollaczek–Khinchine formula gives the M/G/1 mean wait
``E[W] = λ E[S²] / (2 (1 − ρ))`` with ``ρ = λ S`` and ``E[S²] = S² (1 + c²)``. The wait is zero with
probability ``1 − ρ`` and, conditionally on waiting, close to exponential with mean ``E[W] / ρ``, so its
``p`` quantile is::

    W_p = (E[W] / ρ) · ln(ρ / (1 − p))   if ρ > 1 − p, else 0

The predicted TTFT percentile adds the prefill of a long prompt and the KV transfer (disaggregated)::

    TTFT_p ≈ W_p + prefill(L̄ · t_p) + kv_transfer(L̄),   t_p = 1 + √c² · (−ln(1 − p) − 1)

(``t_p`` is the exponential quantile factor for ``c² = 1``, 1 for fixed lengths). Summing two quantiles is
conservative; the online correction removes the bias that remains. The per-replica arrival rate at the target
``λ*`` is found by bisection (``TTFT_p`` rises with ``λ``).

Decode (ITL). A replica with mean concurrency ``m`` runs batches of ``m`` sequences of mean context
``C = L̄ + Ō/2``. Concurrency is roughly Poisson, so the batch stays at or below ``B`` with probability
``p`` when ``m + z_p √m ≤ B`` (``z_p`` the normal quantile). ``B*`` is the largest batch whose step time
``decode_step(B, C) ≤ ITL target`` and whose KV cache ``B · (L̄ + Ō)`` fits in ``kv_fill`` of the cache.
Per-replica output tokens/s at the target is ``m*/decode_step(m*, C)`` with ``√m* = (−z + √(z² + 4B*)) / 2``.

An aggregated replica (role ``both``) time-shares: it needs ``λ/λ* + g/g*`` replicas (prefill share plus
decode share), a fluid approximation.

Correction. ``c ← exp((1 − a) ln c + a ln(observed / predicted))`` per signal, clamped to [0.5, 4], learned
only from clean data at a steady fleet; sizing divides the target by ``c``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.stats import gamma as _gamma

from autoscaler.core.profile import PerformanceProfile

__all__ = [
    "Demand",
    "ModelParams",
    "budgeted_ttft",
    "decode_batch_limit",
    "decode_capacity",
    "decode_concurrency",
    "decode_slots",
    "erlang_c",
    "no_wait_ttft",
    "predicted_itl",
    "predicted_ttft",
    "prefill_capacity",
    "prefill_replicas",
    "ttft_quantile",
    "update_correction",
]


@dataclass(frozen=True, slots=True)
class Demand:
    """Load on the fleet: requests/s, prompt tokens/s, output tokens/s (all ≥ 0)."""

    arrival_rate: float
    prompt_tokens_rate: float
    generation_tokens_rate: float

    @property
    def mean_prompt(self) -> float:
        """Mean prompt length, tokens (512 when unknown: the profiles' reference length)."""
        return self.prompt_tokens_rate / self.arrival_rate if self.arrival_rate > 1e-9 else 512.0

    @property
    def mean_output(self) -> float:
        """Mean output length, tokens (128 when unknown)."""
        return self.generation_tokens_rate / self.arrival_rate if self.arrival_rate > 1e-9 else 128.0

    def scaled(self, factor: float) -> Demand:
        """The same mix at ``factor`` times the rate."""
        return Demand(
            self.arrival_rate * factor, self.prompt_tokens_rate * factor, self.generation_tokens_rate * factor
        )


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Assumptions of the capacity model, all documented in docs/control.md.

    Attributes:
        prompt_cv2: squared coefficient of variation of prefill service time (1 = exponential lengths).
        kv_fill: fraction of the KV cache planned to be used (the rest absorbs variation), 0–1.
        disaggregated: add the prefill→decode KV transfer to TTFT.
        pooled: model the prefill fleet as one M/G/n queue (True) or as ``n`` M/G/1 queues at ``λ/n``
            (False, the default). Least-outstanding routing does not move a request once queued, chunked
            prefill shares a replica between prompts, and real arrivals come in sub-minute bursts: replaying
            the Azure conversation trace, the pooled model predicted 0.45–0.92× the twin's per-minute TTFT p95
            at 9–19 replicas, the per-replica model 1.12–1.35× (``bench/queue_model.py``). The pooled model
            is right only for steady Poisson load.
        length_nodes: quadrature points of the prompt-length distribution (Gamma with mean ``L̄`` and
            squared CV ``prompt_cv2``) used for the TTFT quantile.
        floor_wait_share: pooled only: beyond the fleet where at most this share of the allowed tail
            ``1 − p`` waits at all (``ErlangC(n, λE[S]) ≤ share · (1 − p)``), more replicas cannot lower the
            TTFT quantile, so that fleet bounds the answer.
        floor_slack: the TTFT quantile approaches the no-wait floor (an idle replica's) only as the fleet
            grows without bound, so a target below ``(1 + floor_slack) × floor`` is sized as that instead.
        arrival_cv2: squared coefficient of variation of inter-arrival times in the Allen–Cunneen wait
            (1 = Poisson).
        slot_margin: multiplies the decode slot margin ``z_p·√m*`` (sequences in flight fluctuate; a
            sequence that finds no slot waits, and that wait is TTFT).
    """

    prompt_cv2: float = 1.0
    kv_fill: float = 0.9
    disaggregated: bool = True
    pooled: bool = False
    length_nodes: int = 48
    floor_wait_share: float = 0.1
    floor_slack: float = 0.25
    arrival_cv2: float = 1.0
    slot_margin: float = 1.0


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/``servers`` queue with ``offered`` = λ·E[S] erlangs
    (1 when ``offered ≥ servers``). Computed with the Erlang-B recursion, stable for large ``servers``."""
    if servers <= 0 or offered >= servers:
        return 1.0
    if offered <= 0:
        return 0.0
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    rho = offered / servers
    return b / (1.0 - rho * (1.0 - b))


def _length_nodes(mean_prompt: float, cv2: float, nodes: int) -> np.ndarray:
    """Equal-probability quadrature nodes of a Gamma(mean ``mean_prompt``, squared CV ``cv2``) length."""
    u = (np.arange(nodes) + 0.5) / nodes
    if cv2 <= 0.0:
        return np.full(nodes, float(mean_prompt))
    shape = 1.0 / cv2
    return np.asarray(_gamma.ppf(u, shape, scale=mean_prompt / shape), dtype=float)


# memoised: one decision evaluates the same (profile, mean prompt, assumptions) a dozen times, and the
# Gamma quantiles and per-node profile lookups were a fifth of ``decide``'s time; the inputs are immutable
# and the result read-only, so the cache changes no answer (bench/decide_speed.py has the figures)
@functools.lru_cache(maxsize=256)
def _ttft_terms(
    profile: PerformanceProfile, mean_prompt: float, params: ModelParams
) -> tuple[np.ndarray, float, float]:
    """Per-node no-wait TTFT (prefill + KV transfer + first decode step), E[S] and squared CV of S."""
    lengths = _length_nodes(max(1.0, mean_prompt), params.prompt_cv2, params.length_nodes)
    s = np.array([profile.prefill_time_s(float(x)) for x in lengths])
    base = s + profile.decode_step_s(1, mean_prompt)
    if params.disaggregated:
        base = base + np.array([profile.kv_transfer_s(float(x)) for x in lengths])
    es = float(s.mean())
    cs2 = float((s * s).mean()) / (es * es) - 1.0 if es > 0 else 0.0
    base.flags.writeable = False  # shared by every caller of the memoised terms
    return base, es, max(0.0, cs2)


def ttft_quantile(
    profile: PerformanceProfile,
    replicas: int,
    arrival_rate: float,
    mean_prompt: float,
    quantile: float,
    params: ModelParams = ModelParams(),
) -> float:
    """TTFT at ``quantile`` for ``replicas`` prefill replicas sharing ``arrival_rate`` requests/s (seconds;
    inf when overloaded or ``replicas`` ≤ 0).

    Pooled (M/G/n, Allen–Cunneen): an arrival waits with probability ``C = ErlangC(n, λE[S])`` and the wait,
    given that it waits, is exponential with rate ``θ = (n/E[S] − λ) · 2/(1 + c_s²)``. The TTFT is that wait
    plus the request's own no-wait time ``b(L) = prefill(L) + kv_transfer(L) + decode_step(1, L̄)``, so::

        P(TTFT > x) = E_L[ 1{x < b(L)} + 1{x ≥ b(L)} · C · exp(−θ (x − b(L))) ]

    and the quantile solves ``P(TTFT > x) = 1 − p`` (bisection; ``E_L`` over equal-probability Gamma nodes).
    With ``params.pooled`` False each replica is its own M/G/1 queue at ``λ/n``.
    """
    if replicas <= 0:
        return math.inf if arrival_rate > 0 else 0.0
    terms = _ttft_terms(profile, mean_prompt, params)
    if params.pooled:
        return _ttft_q(terms, replicas, arrival_rate, quantile, params.arrival_cv2)
    return _ttft_q(terms, 1, arrival_rate / replicas, quantile, params.arrival_cv2)


def _ttft_q(
    terms: tuple[np.ndarray, float, float], servers: int, lam: float, quantile: float, ca2: float = 1.0
) -> float:
    base, es, cs2 = terms
    offered = lam * es
    if offered >= servers:
        return math.inf
    c = erlang_c(servers, offered) if lam > 0 else 0.0
    target_tail = 1.0 - quantile
    lo, hi = float(base.min()), float(base.max())
    if c <= 0.0 or es <= 0:
        # no waiting: the quantile of the no-wait time itself
        return float(np.quantile(base, quantile))
    theta = (servers / es - lam) * 2.0 / (ca2 + cs2)

    def tail(x: float) -> float:  # mean over the nodes: add.reduce / n is ndarray.mean minus its overhead
        w = x - base
        return float(np.add.reduce(np.where(w < 0.0, 1.0, c * np.exp(-theta * np.maximum(w, 0.0))))) / base.size

    hi += max(0.0, math.log(c / target_tail)) / theta + 1e-9
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if tail(mid) > target_tail:
            lo = mid
        else:
            hi = mid
    return hi


def prefill_replicas(
    profile: PerformanceProfile,
    target_s: float,
    arrival_rate: float,
    mean_prompt: float,
    quantile: float,
    params: ModelParams = ModelParams(),
    limit: int = 100_000,
) -> float:
    """Fewest prefill replicas with ``ttft_quantile ≤ target_s`` at ``arrival_rate`` (0 at no load; inf
    when more than ``limit`` would be needed). When even an idle replica misses ``target_s``, the fewest
    replicas at which almost no request waits (``ModelParams.floor_wait_share``)."""
    if arrival_rate <= 0:
        return 0.0
    terms = _ttft_terms(profile, mean_prompt, params)
    target = max(target_s, (1.0 + params.floor_slack) * _ttft_q(terms, 1, 0.0, quantile))
    ca2 = params.arrival_cv2

    def too_slow(n: int) -> bool:
        if params.pooled:
            return _ttft_q(terms, n, arrival_rate, quantile, ca2) > target
        return _ttft_q(terms, 1, arrival_rate / n, quantile, ca2) > target

    def waits(n: int) -> bool:
        return erlang_c(n, arrival_rate * terms[1]) > params.floor_wait_share * (1.0 - quantile)

    offered = arrival_rate * terms[1]
    if not math.isfinite(offered) or offered >= limit:
        return math.inf  # more than ``limit`` replicas just to be stable (and no O(n) Erlang loop over it)
    n0 = max(1, math.floor(offered) + 1)  # the smallest stable fleet
    best = _first_false(too_slow, n0, limit)
    if params.pooled:
        # beyond the fleet where almost nobody waits, replicas buy nothing: that bounds the answer
        best = min(best, _first_false(waits, n0, limit))
    return best


def no_wait_ttft(
    profile: PerformanceProfile, mean_prompt: float, quantile: float, params: ModelParams
) -> float:
    """TTFT at ``quantile`` when nobody waits: the floor no fleet size can beat (seconds)."""
    return _ttft_q(_ttft_terms(profile, mean_prompt, params), 1, 0.0, quantile)


def budgeted_ttft(
    profile: PerformanceProfile,
    target_s: float,
    headroom: float,
    mean_prompt: float,
    quantile: float,
    params: ModelParams,
) -> float:
    """The TTFT to size prefill for: the no-wait floor plus ``headroom`` × the waiting budget
    ``target − floor`` (seconds), never below ``(1 + floor_slack) ×`` the floor.

    Headroom scales the part of the TTFT that capacity controls: with a 0.45 s floor and a 1 s target,
    headroom 0.5 sizes for 0.725 s, where scaling the whole target would ask for 0.5 s, a hair above the
    floor, where the fleet needed grows without bound and swings with every change in the prompt mix.
    """
    floor = no_wait_ttft(profile, mean_prompt, quantile, params)
    budget = max(0.0, target_s - floor)
    return max((1.0 + params.floor_slack) * floor, floor + headroom * budget)


def _first_false(pred: Callable[[int], bool], start: int, limit: int) -> float:
    """Smallest integer n ≥ start with ``pred(n)`` false (``pred`` falls with n); inf beyond ``limit``."""
    lo, hi = start - 1, start
    while pred(hi):
        lo, hi = hi, hi * 2
        if hi > limit:
            return math.inf
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid
    return float(hi)


def predicted_ttft(
    profile: PerformanceProfile,
    rate_per_replica: float,
    mean_prompt: float,
    quantile: float,
    params: ModelParams = ModelParams(),
) -> float:
    """TTFT at ``quantile`` for one prefill replica receiving ``rate_per_replica`` requests/s (seconds, inf
    when overloaded): :func:`ttft_quantile` with one replica."""
    return ttft_quantile(profile, 1, rate_per_replica, mean_prompt, quantile, params)


def prefill_capacity(
    profile: PerformanceProfile,
    target_s: float,
    mean_prompt: float,
    quantile: float,
    params: ModelParams = ModelParams(),
) -> float:
    """Largest requests/s one replica takes with ``TTFT_quantile ≤ target_s`` (0 when even an idle replica
    misses the target)."""
    if predicted_ttft(profile, 0.0, mean_prompt, quantile, params) > target_s:
        return 0.0
    hi = 1.0 / profile.prefill_time_s(mean_prompt)
    lo = 0.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if predicted_ttft(profile, mid, mean_prompt, quantile, params) <= target_s:
            lo = mid
        else:
            hi = mid
    return lo


def decode_batch_limit(
    profile: PerformanceProfile,
    itl_target_s: float,
    context_tokens: float,
    tokens_per_seq: float,
    params: ModelParams = ModelParams(),
) -> int:
    """Largest batch ``B*`` with ``decode_step(B, C) ≤ itl_target_s`` and ``B · tokens_per_seq`` within
    ``kv_fill`` of the KV cache (0 when not even one sequence qualifies)."""
    kv_limit = int(profile.kv_capacity_tokens * params.kv_fill / max(1.0, tokens_per_seq))
    hi = min(profile.max_batch_size, kv_limit)
    if hi < 1 or profile.decode_step_s(1, context_tokens) > itl_target_s:
        return 0
    lo = 1
    while lo < hi:  # step time rises with batch size: binary search
        mid = (lo + hi + 1) // 2
        if profile.decode_step_s(mid, context_tokens) <= itl_target_s:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _z(quantile: float) -> float:
    return NormalDist().inv_cdf(quantile)


def decode_capacity(
    profile: PerformanceProfile,
    itl_target_s: float,
    demand: Demand,
    quantile: float,
    params: ModelParams = ModelParams(),
) -> float:
    """Output tokens/s one decode replica sustains with ITL at ``quantile`` ≤ ``itl_target_s``."""
    m = decode_concurrency(profile, itl_target_s, demand, quantile, params)
    if m <= 0.0:
        return 0.0
    ctx = demand.mean_prompt + demand.mean_output / 2.0
    return m / profile.decode_step_s(max(1.0, m), ctx)


def decode_slots(
    profile: PerformanceProfile,
    itl_target_s: float,
    demand: Demand,
    params: ModelParams = ModelParams(),
) -> int:
    """Decode slots per replica for ``demand``'s sequences: the batch limit ``B*`` at the ITL target, with the
    context at mid-generation (``L̄ + Ō/2``) and each sequence's whole ``L̄ + Ō`` in the KV cache."""
    return decode_batch_limit(
        profile,
        itl_target_s,
        demand.mean_prompt + demand.mean_output / 2.0,
        demand.mean_prompt + demand.mean_output,
        params,
    )


def decode_concurrency(
    profile: PerformanceProfile,
    itl_target_s: float,
    demand: Demand,
    quantile: float,
    params: ModelParams = ModelParams(),
) -> float:
    """Mean sequences in flight one decode replica holds at the ITL target (``m*`` above; 0 if none)."""
    b = decode_slots(profile, itl_target_s, demand, params)
    if b < 1:
        return 0.0
    z = _z(quantile) * params.slot_margin
    root = (-z + math.sqrt(z * z + 4.0 * b)) / 2.0
    return max(root * root, 1e-3)


def predicted_itl(
    profile: PerformanceProfile,
    replicas: float,
    demand: Demand,
    quantile: float,
    params: ModelParams = ModelParams(),
) -> float:
    """ITL at ``quantile`` for ``replicas`` decode replicas under ``demand`` (seconds; inf when the KV cache
    or the batch limit overflows)."""
    ctx = demand.mean_prompt + demand.mean_output / 2.0
    if demand.generation_tokens_rate <= 0.0:
        return profile.decode_step_s(1, ctx)
    if replicas <= 0:
        return math.inf
    per = demand.generation_tokens_rate / replicas
    # mean concurrency m solves m / step(m) = per (tokens/s); throughput rises with m
    cap = min(
        profile.max_batch_size, profile.kv_capacity_tokens / max(1.0, demand.mean_prompt + demand.mean_output)
    )
    if cap < 1.0 or cap / profile.decode_step_s(cap, ctx) < per:
        return math.inf
    lo, hi = 0.0, cap
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if mid / profile.decode_step_s(max(1.0, mid), ctx) < per:
            lo = mid
        else:
            hi = mid
    m = hi
    batch = m + _z(quantile) * math.sqrt(m)
    if batch > cap:
        return math.inf
    return profile.decode_step_s(max(1.0, batch), ctx)


def update_correction(
    current: float, observed: float, predicted: float, gain: float = 0.2, lo: float = 0.5, hi: float = 4.0
) -> float:
    """One step of the log-domain filter of observed/predicted, clamped to ``[lo, hi]``."""
    if not (observed > 0 and predicted > 0 and math.isfinite(observed) and math.isfinite(predicted)):
        return current
    value = math.exp((1.0 - gain) * math.log(current) + gain * math.log(observed / predicted))
    return min(hi, max(lo, value))
