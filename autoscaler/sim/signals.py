"""What a policy sees: the fleet's Prometheus signals, scraped and aggregated the way Prometheus would.

Every replica exports vLLM's metrics (histograms with vLLM's buckets, gauges, counters). A scrape every
``scrape_interval_s`` stores one sample per ready or draining replica; the policy's view is computed from the
samples in the rate window exactly like the PromQL a real controller runs:

- ``histogram_quantile(q, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[w])))`` for TTFT (and the
  same over ``vllm:inter_token_latency_seconds`` for ITL, ``vllm:e2e_request_latency_seconds`` for e2e);
- ``sum(rate(vllm:prompt_tokens_total[w]))``, ``sum(rate(vllm:generation_tokens_total[w]))``;
- arrival rate: ``sum(rate(vllm:time_to_first_token_seconds_count[w]))`` on the prefill/aggregated role
  (requests that were started; vLLM exports no arrival counter) and
  ``sum(rate(vllm:request_success_total[w]))`` on the decode role;
- ``sum(vllm:num_requests_waiting)``, ``sum(vllm:num_requests_running)``, ``avg``/``max`` of
  ``vllm:kv_cache_usage_perc`` from the newest scrape.

``rate`` follows Prometheus's ``extrapolatedRate`` (promql/functions.go); ``histogram_quantile`` is the one
the Prometheus adapter uses too (:mod:`autoscaler.core.histogram`, Prometheus's ``bucketQuantile``).
The range is left-open, ``(t − w, t]`` (Prometheus 3 semantics).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from autoscaler.core.histogram import histogram_quantile
from autoscaler.core.types import DataFlag, Observation, Role, RoleObservation
from autoscaler.sim.buckets import E2E_BUCKETS, ITL_BUCKETS, TTFT_BUCKETS
from autoscaler.sim.fleet import Fleet, Replica, ReplicaState

__all__ = ["ReplicaSample", "SignalStore", "extrapolated_rate", "sample_replica"]

FloatArray = npt.NDArray[np.float64]


def extrapolated_rate(
    times: Sequence[float], values: FloatArray, range_start: float, range_end: float, *, counter: bool = True
) -> FloatArray:
    """Prometheus ``rate()`` of one or several aligned counter series over ``(range_start, range_end]``.

    Args:
        times: sample times (seconds), ascending, all inside the range; at least two.
        values: shape ``(len(times),)`` or ``(len(times), k)`` for ``k`` series sampled at the same times.
        range_start, range_end: the range selector's bounds, seconds.
        counter: apply the counter rule (do not extrapolate below zero).

    Returns:
        Per-second rate per series (shape ``values.shape[1:]``).
    """
    n = len(times)
    if n < 2:
        raise ValueError("rate needs at least two samples")
    first = values[0]
    last = values[-1]
    # counter resets: add back the value before each drop
    delta = last - first
    if counter:
        drops = np.diff(values, axis=0)
        delta = delta + np.where(drops < 0, values[:-1], 0.0).sum(axis=0)
    sampled = times[-1] - times[0]
    avg = sampled / (n - 1)
    to_start = np.full(np.shape(delta), times[0] - range_start, dtype=float)
    to_end = range_end - times[-1]
    if counter:
        with np.errstate(divide="ignore", invalid="ignore"):
            safe = np.where(delta > 0, delta, 1.0)
            to_zero = np.where((delta > 0) & (first >= 0), sampled * (first / safe), np.inf)
        to_start = np.minimum(to_start, to_zero)
    threshold = avg * 1.1
    interval = sampled + np.where(to_start < threshold, to_start, avg / 2)
    interval = interval + (to_end if to_end < threshold else avg / 2)
    result: FloatArray = delta * (interval / sampled) / (range_end - range_start)
    return result


@dataclass(frozen=True, slots=True)
class ReplicaSample:
    """One scrape of one replica: cumulative counters and histogram buckets (``+Inf`` last), gauges.

    Attributes:
        t: scrape time, seconds from the trace's start.
        counters: flat vector, see :data:`SignalStore.LAYOUT` for the slices (counts, sums, tokens, success).
        waiting: ``vllm:num_requests_waiting``.
        running: ``vllm:num_requests_running``.
        kv_usage: ``vllm:kv_cache_usage_perc`` (fraction 0–1).
    """

    t: float
    counters: FloatArray
    waiting: int
    running: int
    kv_usage: float


_NT = len(TTFT_BUCKETS) + 1
_NI = len(ITL_BUCKETS) + 1
_NE = len(E2E_BUCKETS) + 1
# layout of ReplicaSample.counters
_TTFT = slice(0, _NT)
_ITL = slice(_NT, _NT + _NI)
_E2E = slice(_NT + _NI, _NT + _NI + _NE)
_SCAL = _NT + _NI + _NE
_TTFT_SUM, _ITL_SUM, _E2E_SUM, _PROMPT, _GEN, _SUCCESS, _PREEMPT = range(_SCAL, _SCAL + 7)
_WIDTH = _SCAL + 7
_TTFT_LE = (*TTFT_BUCKETS, math.inf)
_ITL_LE = (*ITL_BUCKETS, math.inf)
_E2E_LE = (*E2E_BUCKETS, math.inf)


def sample_replica(rep: Replica, t: float, kv_capacity: int) -> ReplicaSample:
    """Read one replica's exported metrics at ``t`` (call :meth:`Fleet.flush` first)."""
    c = np.empty(_WIDTH)
    c[_TTFT] = np.cumsum(rep.ttft_counts)
    c[_ITL] = np.cumsum(rep.itl_counts)
    c[_E2E] = np.cumsum(rep.e2e_counts)
    c[_TTFT_SUM] = rep.ttft_sum
    c[_ITL_SUM] = rep.itl_sum
    c[_E2E_SUM] = rep.e2e_sum
    c[_PROMPT] = rep.prompt_tokens
    c[_GEN] = rep.gen_tokens
    c[_SUCCESS] = rep.success
    c[_PREEMPT] = rep.preemptions
    kv = min(1.0, rep.kv_tokens_at(t) / kv_capacity) if kv_capacity > 0 else 0.0
    return ReplicaSample(t, c, len(rep.waiting), rep.num_running(), kv)


class SignalStore:
    """Scraped samples per replica and the policy's view computed from them.

    Args:
        rate_window_s: the ``[w]`` of the policy's ``rate()`` queries, seconds.
        percentile: SLO percentile (0–100) at which TTFT/ITL/e2e are reported.
    """

    def __init__(self, rate_window_s: float, percentile: float) -> None:
        self.window = rate_window_s
        self.q = percentile / 100.0
        self._samples: dict[int, deque[ReplicaSample]] = {}
        self._roles: dict[int, Role] = {}
        self._last_scrape = -math.inf

    def scrape(self, fleet: Fleet, t: float) -> None:
        """Scrape every reachable replica at ``t``."""
        fleet.flush(t)
        horizon = t - self.window - 1e-9
        for rep in fleet.scraped():
            dq = self._samples.get(rep.uid)
            if dq is None:
                dq = self._samples[rep.uid] = deque()
                self._roles[rep.uid] = rep.role
            dq.append(sample_replica(rep, t, fleet.kv_capacity(rep.role)))
        for uid in list(self._samples):
            dq = self._samples[uid]
            while dq and dq[0].t <= horizon:
                dq.popleft()
            if not dq:
                del self._samples[uid]
                del self._roles[uid]
        self._last_scrape = t

    def latest(self, uid: int) -> ReplicaSample | None:
        """Newest sample of replica ``uid`` (None if it has none in the window)."""
        dq = self._samples.get(uid)
        return dq[-1] if dq else None

    def observe(self, fleet: Fleet, t: float) -> Observation:
        """The :class:`Observation` a controller querying Prometheus at ``t`` would build."""
        roles: dict[Role, RoleObservation] = {}
        start = t - self.window
        for role in fleet.config.roles:
            rates: FloatArray | None = None
            waiting = running = 0
            kvs: list[float] = []
            reporting = 0
            active = fleet.active(role)
            active_uids = {r.uid for r in active}
            # replicas scraped at the same instants are rated together (one vectorised call per group)
            groups: dict[tuple[float, ...], list[FloatArray]] = {}
            for uid, dq in self._samples.items():
                if self._roles[uid] is not role:
                    continue
                newest = dq[-1]
                if newest.t == self._last_scrape:
                    waiting += newest.waiting
                    running += newest.running
                    kvs.append(newest.kv_usage)
                    if uid in active_uids:
                        reporting += 1
                inside = [s for s in dq if s.t > start]
                if len(inside) >= 2:
                    key = tuple(s.t for s in inside)
                    groups.setdefault(key, []).append(np.stack([s.counters for s in inside]))
            for times, stacks in groups.items():
                values = np.stack(stacks, axis=1)  # (samples, replicas, series)
                r = extrapolated_rate(list(times), values, start, t).sum(axis=0)
                rates = r if rates is None else rates + r
            ready = sum(1 for r in active if r.state is ReplicaState.READY)
            starting = len(active) - ready
            flags: set[DataFlag] = set()
            notes: list[str] = []
            if ready > 0 and reporting == 0:
                flags.add(DataFlag.MISSING)
                notes.append(f"no {role.value} replica reported at the last scrape")
            elif reporting < ready:
                flags.add(DataFlag.PARTIAL)
                notes.append(f"{reporting} of {ready} ready {role.value} replicas reported")
            ttft = itl = e2e = arrival = prompt = gen = None
            if rates is not None:
                if role is not Role.DECODE:
                    ttft = _finite(histogram_quantile(self.q, zip(_TTFT_LE, rates[_TTFT], strict=True)))
                    arrival = float(rates[_TTFT][-1])
                if role is not Role.PREFILL:
                    itl = _finite(histogram_quantile(self.q, zip(_ITL_LE, rates[_ITL], strict=True)))
                    e2e = _finite(histogram_quantile(self.q, zip(_E2E_LE, rates[_E2E], strict=True)))
                if role is Role.DECODE:
                    arrival = float(rates[_SUCCESS])
                prompt = float(rates[_PROMPT])
                gen = float(rates[_GEN])
            have_gauges = reporting > 0 or bool(kvs)
            roles[role] = RoleObservation(
                replicas=fleet.target(role),
                ready=ready,
                starting=starting,
                ttft=ttft,
                itl=itl,
                e2e=e2e,
                queue_depth=float(waiting) if have_gauges else None,
                running=float(running) if have_gauges else None,
                kv_utilization=float(np.mean(kvs)) if kvs else None,
                kv_utilization_max=float(max(kvs)) if kvs else None,
                arrival_rate=arrival,
                prompt_tokens_rate=prompt,
                generation_tokens_rate=gen,
                reporting=reporting,
                flags=frozenset(flags),
                notes=tuple(notes),
            )
        return Observation(time=fleet.config.start_time_s + t, roles=roles)


def _finite(x: float) -> float | None:
    # no observations in the window → NaN in PromQL; the twin reports "not known" (None)
    return x if math.isfinite(x) else None
