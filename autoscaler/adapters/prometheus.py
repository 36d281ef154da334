"""The Prometheus metrics source: many pools observed with a fixed number of queries per control tick.

How it works (details and the PromQL in docs/metrics.md):

1. Queries are grouped by what changes the PromQL text — engine metric map, label names and rate window —
   and each group is fetched with one query per signal that matches the pods of *all* its pools with a
   single ``namespace=~"ns1|ns2"`` matcher. Nothing in the query names a pool or a pod, so the number of
   HTTP requests per tick does not grow with the number of InferenceAutoscalers.
2. Results come back per pod (``sum by (namespace, pod[, le])``) and are joined to pools and roles in Python
   through :attr:`PoolQuery.pods_by_role` (pod names from the API server). Percentiles are computed here
   from the role's summed bucket rates with Prometheus's own ``histogram_quantile`` rules
   (:func:`autoscaler.core.histogram.histogram_quantile`), which is what
   ``histogram_quantile(q, sum by (le) (rate(x_bucket{pod=~"<role pods>"}[w])))`` would return.
3. Data quality becomes flags, never zeros: no series → ``Missing``; NaN/±Inf → ``NotFinite``; several
   series for one pod and signal that differ only in scrape identity → ``Duplicate``; newest sample older
   than the staleness limit → ``Stale``; some of the role's pods reporting → ``Partial``; the server
   failing, timing out or replying with something that is not a Prometheus result → ``source_ok=False``
   and every role flagged ``Error``.

prometheus-api-client is synchronous, so every request runs in this source's own bounded thread pool with
an explicit HTTP timeout (and the same ``timeout`` passed to the server), and is retried a bounded number of
times with jittered backoff on connection errors and 5xx only.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from pydantic import BaseModel, ConfigDict, Field
from urllib3.util.retry import Retry

from autoscaler.adapters.engines import SIGNAL_KIND, EngineMetrics, Signal, SignalKind, engine_metrics
from autoscaler.adapters.promql import check_label_name, name_matcher, regex_alternation, string_literal
from autoscaler.core.histogram import histogram_quantile
from autoscaler.core.types import DataFlag, Observation, Role, RoleObservation
from autoscaler.errors import AutoscalerError, InputError, PermanentError, TemporaryError
from autoscaler.ports import PoolQuery
from autoscaler.retry import full_jitter, retrying, stop_after_attempt

__all__ = [
    "History",
    "PrometheusMetricsSource",
    "PrometheusSettings",
    "QueryStats",
]

# Labels that only say *how* a series was scraped; two series of one pod that differ only in these are the
# same measurement collected twice (two ServiceMonitors, an HA pair without deduplication).
SCRAPE_IDENTITY_LABELS = frozenset(
    {"__name__", "job", "instance", "endpoint", "service", "container", "prometheus", "prometheus_replica",
     "receive", "replica", "tenant_id"}
)


class PrometheusSettings(BaseModel):
    """How to reach Prometheus (or Thanos Query / Mimir) and how patient to be.

    Every duration is in seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        description="Base URL including any path prefix, e.g. http://prometheus.monitoring:9090 or "
        "https://mimir.example/prometheus (Mimir's query path prefix).",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers, e.g. {'X-Scope-OrgID': 'team-a'} for Mimir/Cortex tenants or an "
        "Authorization bearer token.",
    )
    timeout_s: float = Field(
        default=5.0, gt=0, le=120,
        description="Per-request deadline, seconds: the HTTP client timeout and the server-side `timeout` "
        "parameter. Default 5 s keeps one tick (8 queries, bounded concurrency) well under a 15 s interval.",
    )
    max_concurrency: int = Field(
        default=4, ge=1, le=32,
        description="Queries in flight at once (threads of this source's pool). Default 4: enough to overlap "
        "a tick's 8 queries without hammering the server.",
    )
    retries: int = Field(
        default=2, ge=0, le=10,
        description="Extra attempts after a connection error or a 5xx reply (never after a 4xx or a timeout, "
        "which would only push the tick past its deadline).",
    )
    retry_backoff_s: float = Field(
        default=0.2, ge=0, le=30,
        description="Base of the exponential backoff between attempts, seconds; full jitter is applied.",
    )
    staleness_limit_s: float = Field(
        default=60.0, gt=0,
        description="A pod whose newest heartbeat sample is older than this is Stale, seconds, unless the "
        "PoolQuery sets its own (the controller passes spec.metrics.staleness). Default 60 s is four missed "
        "scrapes at the common 15 s interval, well inside Prometheus's 5 min lookback.",
    )
    verify_tls: bool = Field(default=True, description="Verify the server's TLS certificate.")
    partial_response: bool | None = Field(
        default=False,
        description="Sent as Thanos's `partial_response` parameter when not None. False makes Thanos fail "
        "the query instead of silently answering from a subset of stores (which would look like less load).",
    )
    default_percentile: float = Field(
        default=0.95, gt=0, lt=1,
        description="Quantile used for a latency signal whose percentile a PoolQuery does not set.",
    )


@dataclass(frozen=True, slots=True)
class History:
    """Past demand of one pool, for warm-starting the forecasters. Arrays share one time axis.

    Attributes:
        time: sample times, Unix seconds.
        arrival_rate: requests/s (NaN where Prometheus had no data).
        prompt_tokens_rate: prompt tokens/s.
        generation_tokens_rate: generated tokens/s.
    """

    time: npt.NDArray[np.float64]
    arrival_rate: npt.NDArray[np.float64]
    prompt_tokens_rate: npt.NDArray[np.float64]
    generation_tokens_rate: npt.NDArray[np.float64]


@dataclass
class QueryStats:
    """Counters of what the source sent, for tests and the benchmark.

    Attributes:
        queries: logical queries issued (one per signal and group per tick).
        attempts: HTTP requests made, retries included.
        failures: queries that failed after all attempts.
    """

    queries: int = 0
    attempts: int = 0
    failures: int = 0


# --------------------------------------------------------------------------------------------------------
# Query plan: pure data built from PoolQuery objects.


@dataclass(frozen=True, slots=True)
class _GroupKey:
    engine: str
    overrides: tuple[tuple[str, str], ...]
    namespace_label: str
    pod_label: str
    window_s: float


@dataclass(slots=True)
class _Group:
    key: _GroupKey
    metrics: EngineMetrics
    pools: list[PoolQuery] = field(default_factory=list)

    def namespaces(self) -> list[str]:
        return sorted({p.namespace for p in self.pools})


def _window(window_s: float) -> str:
    """A PromQL duration for a window in seconds (milliseconds resolution)."""
    ms = round(window_s * 1000)
    if ms <= 0:
        raise InputError(f"rate window must be positive, got {window_s} s", source="spec.metrics.window")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _selector(names: Sequence[str], group: _Group) -> str:
    ns = group.key.namespace_label
    namespaces = group.namespaces()
    if len(namespaces) == 1:
        ns_matcher = f"{ns}={string_literal(namespaces[0])}"
    else:
        ns_matcher = f"{ns}=~{string_literal(regex_alternation(namespaces))}"
    return "{" + name_matcher(names) + ", " + ns_matcher + "}"


def build_queries(group: _Group) -> dict[str, str]:
    """PromQL per query id (a signal value, ``gauges`` or ``heartbeat``) for one group; pure."""
    by = f"{group.key.namespace_label}, {group.key.pod_label}"
    window = _window(group.key.window_s)
    m = group.metrics
    queries: dict[str, str] = {}
    gauge_names = [s for sig in Signal if SIGNAL_KIND[sig] is SignalKind.GAUGE
                   for alt in m.spellings(sig) for s in alt]
    if gauge_names:
        # Raw series keep __name__, so one query returns every gauge of every pod of the group.
        queries["gauges"] = _selector(gauge_names, group)
    queries["heartbeat"] = f"max by ({by}) (timestamp({_selector(m.heartbeat_spellings(), group)}))"
    for sig in Signal:
        kind = SIGNAL_KIND[sig]
        if kind is SignalKind.GAUGE or not m.spellings(sig):
            continue
        parts = []
        for alt in m.spellings(sig):
            if kind is SignalKind.HISTOGRAM:
                sel = _selector([f"{n}_bucket" for n in alt], group)
                parts.append(f"sum by ({by}, le) (rate({sel}[{window}]))")
            else:
                parts.append(f"sum by ({by}) (rate({_selector(alt, group)}[{window}]))")
        # ``or`` keeps, per pod (and bucket), the first name that exists: old names are read only where
        # the new one is absent, never added to it.
        queries[sig.value] = " or ".join(parts)
    return queries


def _group_pools(queries: Sequence[PoolQuery]) -> tuple[list[_Group], dict[str, str]]:
    """Groups of pools that share query text; invalid pools come back as ``key → error message``."""
    groups: dict[_GroupKey, _Group] = {}
    invalid: dict[str, str] = {}
    for q in queries:
        try:
            ns_label = check_label_name(q.label_overrides.get("namespace", "namespace"))
            pod_label = check_label_name(q.label_overrides.get("pod", "pod"))
            metrics = engine_metrics(q.engine, q.metric_overrides)
            key = _GroupKey(q.engine, tuple(sorted(q.metric_overrides.items())), ns_label, pod_label,
                            float(q.window_s))
            _window(q.window_s)
            for names in metrics.names.values():
                name_matcher(names)
        except InputError as exc:
            invalid[q.key] = str(exc)
            continue
        groups.setdefault(key, _Group(key, metrics)).pools.append(q)
    return list(groups.values()), invalid


# --------------------------------------------------------------------------------------------------------
# Result parsing: untrusted JSON → typed samples, or a clear error.


class MalformedReply(PermanentError):
    """The server answered 200 with something that is not a Prometheus vector."""


@dataclass(frozen=True, slots=True)
class _Sample:
    labels: Mapping[str, str]
    value: float


def _parse_vector(result: Any, query_id: str) -> list[_Sample]:
    if not isinstance(result, list):
        raise MalformedReply(f"{query_id}: expected a list of series, got {type(result).__name__}")
    out = []
    for item in result:
        try:
            labels = item["metric"]
            raw = item["value"][1]
            if not isinstance(labels, dict) or not isinstance(raw, str):
                raise TypeError
            value = float(raw)  # "NaN", "+Inf", "-Inf" parse too
        except (KeyError, IndexError, TypeError, ValueError):
            raise MalformedReply(f"{query_id}: malformed series {str(item)[:200]}") from None
        out.append(_Sample({str(k): str(v) for k, v in labels.items()}, value))
    return out


# --------------------------------------------------------------------------------------------------------
# The source.

_STATUS = re.compile(r"HTTP Status Code (\d{3})")


class PrometheusMetricsSource:
    """:class:`autoscaler.ports.MetricsSource` over the Prometheus HTTP API (also Thanos Query, Mimir).

    Call :meth:`aclose` (or use ``async with``) to stop its thread pool.
    """

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.stats = QueryStats()
        self._client = PrometheusConnect(
            url=settings.url.rstrip("/"),
            headers=dict(settings.headers) or None,
            disable_ssl=not settings.verify_tls,
            # The library's own urllib3 retry would sleep inside the worker thread without jitter or a
            # bound on the tick; retries are done here instead.
            # read=False re-raises read timeouts as themselves (requests' ReadTimeout) instead of wrapping
            # them in a ConnectionError, so a slow server is told apart from an unreachable one.
            retry=Retry(total=0, read=False, redirect=0, raise_on_status=False),
            timeout=settings.timeout_s,
        )
        self._executor = ThreadPoolExecutor(max_workers=settings.max_concurrency,
                                            thread_name_prefix="prometheus")
        self._sem = asyncio.Semaphore(settings.max_concurrency)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._backoff = full_jitter(settings.retry_backoff_s, rng=self._rng)
        self._closed = False
        # key → role → pod → Unix time it was last listed in a PoolQuery (see _remember).
        self._listed: dict[str, dict[Role, dict[str, float]]] = {}

    async def __aenter__(self) -> PrometheusMetricsSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the worker threads (waits for requests in flight, which are bounded by the timeout)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    # -- transport --------------------------------------------------------------------------------------

    def _params(self, extra: Mapping[str, str]) -> dict[str, str]:
        # Prometheus durations take integer units: "300ms", not "0.3s".
        params = {"timeout": f"{max(1, round(self.settings.timeout_s * 1000))}ms", **extra}
        if self.settings.partial_response is not None:
            params["partial_response"] = "true" if self.settings.partial_response else "false"
        return params

    def _call_sync(self, fn: Callable[[], Any]) -> Any:
        """One HTTP attempt in a worker thread, library exceptions mapped to the project's tree."""
        try:
            return fn()
        except requests.exceptions.Timeout as exc:
            raise _Timeout(f"no reply within {self.settings.timeout_s:g} s ({type(exc).__name__})") from exc
        except requests.exceptions.ConnectionError as exc:
            raise TemporaryError(f"cannot connect to Prometheus: {_short(exc)}") from exc
        except PrometheusApiClientException as exc:
            match = _STATUS.search(str(exc))
            status = int(match.group(1)) if match else 0
            if status >= 500 or status in (408, 429) or status == 0:
                raise TemporaryError(f"Prometheus replied {status or 'an error'}: {_short(exc)}") from exc
            raise PermanentError(f"Prometheus rejected the query ({status}): {_short(exc)}") from exc
        except (ValueError, KeyError, TypeError) as exc:  # JSON decode errors are ValueErrors
            raise MalformedReply(f"reply is not Prometheus JSON: {_short(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise TemporaryError(f"HTTP error talking to Prometheus: {_short(exc)}") from exc

    async def _request(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` off the event loop with bounded concurrency and bounded, jittered retries."""
        if self._closed:
            raise PermanentError("the Prometheus metrics source is closed")
        self.stats.queries += 1
        loop = asyncio.get_running_loop()
        # connection errors and 5xx are retried; timeouts (the tick's deadline), 4xx and bad replies are not
        attempts = retrying(
            stop=stop_after_attempt(self.settings.retries + 1), wait=self._backoff, sleep=self._sleep,
            retry_on=lambda err: isinstance(err, TemporaryError) and not isinstance(err, _Timeout),
        )
        try:
            async for attempt in attempts:
                with attempt:
                    async with self._sem:
                        self.stats.attempts += 1
                        return await loop.run_in_executor(self._executor, self._call_sync, fn)
        except AutoscalerError:
            self.stats.failures += 1
            raise
        raise AssertionError("unreachable")

    async def query(self, promql: str, at: float) -> Any:
        """One instant query at ``at`` (Unix seconds); returns the ``data.result`` list."""
        params = self._params({"time": f"{at:.3f}"})
        return await self._request(lambda: self._client.custom_query(promql, params=params))

    async def query_range(self, promql: str, start: float, end: float, step_s: float) -> Any:
        """One range query; returns the ``data.result`` list (a matrix)."""
        params = self._params({})
        return await self._request(
            lambda: self._client.custom_query_range(
                promql,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{step_s:g}",
                params=params,
            )
        )

    # -- MetricsSource ------------------------------------------------------------------------------------

    async def observe(self, queries: Sequence[PoolQuery], now: float) -> Mapping[str, Observation]:
        """One :class:`Observation` per ``PoolQuery.key``, evaluated at ``now`` (Unix seconds).

        Never raises for data or server problems: they become flags, or ``source_ok=False`` with ``error``.
        ``replicas``/``ready`` are the number of pods listed for the role; the controller overwrites them
        from the ``/scale`` subresource.
        """
        groups, invalid = _group_pools(queries)
        results: dict[str, Observation] = {}
        for key, message in invalid.items():
            q = next(q for q in queries if q.key == key)
            results[key] = _failed(q, now, message)
        departed = self._remember(queries, now)
        outcomes = await asyncio.gather(*(self._observe_group(g, now, departed) for g in groups))
        for out in outcomes:
            results.update(out)
        return results

    def _remember(self, queries: Sequence[PoolQuery], now: float) -> dict[str, dict[Role, list[str]]]:
        """Per query key and role, pods listed in an earlier query but no longer (scaled down, deleted).

        Their counters and histograms still belong in the role's rates over the window: a replica removed
        half-way through the window served its share of the load until then (and a draining one still
        serves its last requests). Without them every scale-down would read as a drop in demand for one
        window, inviting the next scale-down. A pod is remembered for the rate window plus the staleness
        limit after it was last listed; it contributes only the rate series Prometheus still returns.
        """
        out: dict[str, dict[Role, list[str]]] = {}
        for q in queries:
            keep = q.window_s + (q.staleness_s if q.staleness_s else self.settings.staleness_limit_s)
            roles = self._listed.setdefault(q.key, {})
            for role, pods in q.pods_by_role.items():
                seen = roles.setdefault(role, {})
                for pod in pods:
                    seen[pod] = now
                for pod in [p for p, t in seen.items() if now - t > keep]:
                    del seen[pod]
                current = set(pods)
                gone = sorted(p for p in seen if p not in current)
                if gone:
                    out.setdefault(q.key, {})[role] = gone
        # Forget pools that are no longer queried at all once their pods have aged out.
        active = {q.key for q in queries}
        for key in [k for k in self._listed if k not in active]:
            roles = self._listed[key]
            for seen in roles.values():
                for pod in [p for p, t in seen.items() if now - t > 3600.0]:
                    del seen[pod]
            if not any(roles.values()):
                del self._listed[key]
        return out

    async def _observe_group(self, group: _Group, now: float,
                             departed: Mapping[str, Mapping[Role, Sequence[str]]]) -> dict[str, Observation]:
        plan = build_queries(group)
        ids = list(plan)
        replies = await asyncio.gather(*(self.query(plan[i], now) for i in ids), return_exceptions=True)
        data: dict[str, list[_Sample]] = {}
        for qid, reply in zip(ids, replies, strict=True):
            if isinstance(reply, BaseException):
                if not isinstance(reply, AutoscalerError):
                    raise reply
                message = f"query {qid} failed: {reply}"
                return {p.key: _failed(p, now, message) for p in group.pools}
            try:
                data[qid] = _parse_vector(reply, qid)
            except MalformedReply as exc:
                return {p.key: _failed(p, now, str(exc)) for p in group.pools}
        return _assemble(group, data, now, self.settings, departed)

    async def history(self, query: PoolQuery, start: float, end: float, step_s: float) -> History:
        """Per-pool demand from ``start`` to ``end`` (Unix seconds) every ``step_s`` seconds.

        Requests and prompt tokens are counted at the entry role (prefill if the pool is disaggregated),
        generated tokens at the decode role, so a request that passes through both roles is counted once.
        Pods are selected by the pool's current pod names plus, when ``label_overrides`` names a ``pool``
        label carried by the series, every pod that ever carried that pool's label.

        Raises:
            TemporaryError / PermanentError: the server failed (history is best effort: callers start cold).
            InputError: the query is invalid (unknown engine, bad override).
        """
        groups, invalid = _group_pools([query])
        if invalid:
            raise InputError(invalid[query.key])
        if step_s <= 0 or end < start:
            raise InputError(f"history needs step > 0 and end >= start (got {start}..{end} step {step_s})")
        group = groups[0]
        metrics = group.metrics
        entry = next((r for r in (Role.PREFILL, Role.BOTH, Role.DECODE) if query.pods_by_role.get(r)), None)
        exit_ = next((r for r in (Role.DECODE, Role.BOTH, Role.PREFILL) if query.pods_by_role.get(r)), None)
        times = np.arange(start, end + step_s / 2, step_s, dtype=np.float64)
        series: dict[Signal, npt.NDArray[np.float64]] = {}
        for sig, role in ((Signal.ARRIVALS, entry), (Signal.PROMPT_TOKENS, entry),
                          (Signal.GENERATION_TOKENS, exit_)):
            values = np.full(times.shape, np.nan)
            first_tokens = (sig is Signal.ARRIVALS and metrics.arrivals_at_completion
                            and role in (Role.PREFILL, Role.BOTH) and bool(metrics.spellings(Signal.TTFT)))
            if role is not None and (metrics.spellings(sig) or first_tokens):
                promql = _history_query(group, query, role, sig, first_tokens=first_tokens)
                reply = await self.query_range(promql, start, end, step_s)
                values = _matrix_to_axis(reply, times, sig.value)
            series[sig] = values
        return History(times, series[Signal.ARRIVALS], series[Signal.PROMPT_TOKENS],
                       series[Signal.GENERATION_TOKENS])


class _Timeout(TemporaryError):
    """A request ran past the deadline; not retried within the tick."""



def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def _history_query(group: _Group, query: PoolQuery, role: Role, sig: Signal, *, first_tokens: bool = False) -> str:
    """``sum(rate(...))`` of ``sig`` over the role's pods; ``first_tokens`` reads ``<ttft>_count`` instead
    (arrivals of an engine that counts requests at completion, see :class:`EngineMetrics`)."""
    ns_label, pod_label = group.key.namespace_label, group.key.pod_label
    pods = query.pods_by_role.get(role, ())
    matchers = [f"{ns_label}={string_literal(query.namespace)}"]
    pool_label = query.label_overrides.get("pool")
    parts = []
    alternatives = group.metrics.spellings(sig)
    if first_tokens:
        # First tokens where the TTFT histogram exists, else the completion counter.
        alternatives = (*(tuple(f"{n}_count" for n in alt) for alt in group.metrics.spellings(Signal.TTFT)),
                        *alternatives)
    for alt in alternatives:
        base = [name_matcher(alt), *matchers]
        if pool_label:
            check_label_name(pool_label)
            base.append(f"{pool_label}={string_literal(query.pool)}")
        else:
            base.append(f"{pod_label}=~{string_literal(regex_alternation(pods))}")
        parts.append(f"sum(rate({{{', '.join(base)}}}[{_window(group.key.window_s)}]))")
    return " or ".join(parts)


def _matrix_to_axis(reply: Any, times: npt.NDArray[np.float64], qid: str) -> npt.NDArray[np.float64]:
    if not isinstance(reply, list):
        raise MalformedReply(f"history {qid}: expected a matrix")
    values = np.full(times.shape, np.nan)
    for item in reply:
        try:
            points = item["values"]
            for ts, raw in points:
                idx = int(np.searchsorted(times, float(ts) - 1e-6))
                if idx < len(times) and abs(times[idx] - float(ts)) < 1e-3:
                    v = float(raw)
                    values[idx] = v if math.isnan(values[idx]) else values[idx] + v
        except (KeyError, TypeError, ValueError):
            raise MalformedReply(f"history {qid}: malformed series {str(item)[:200]}") from None
    return values


# --------------------------------------------------------------------------------------------------------
# Assembly: per-pod samples → per-role observations.


def _failed(q: PoolQuery, now: float, message: str) -> Observation:
    roles = {
        role: RoleObservation(replicas=len(pods), ready=len(pods), flags=frozenset({DataFlag.ERROR}),
                              notes=(message,))
        for role, pods in q.pods_by_role.items()
    }
    return Observation(time=now, roles=roles, source_ok=False, error=message)


def _scrape_key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in SCRAPE_IDENTITY_LABELS))


@dataclass
class _PodData:
    heartbeat: float | None = None
    gauges: dict[Signal, list[float]] = field(default_factory=dict)
    duplicates: set[str] = field(default_factory=set)
    counters: dict[Signal, float] = field(default_factory=dict)
    buckets: dict[Signal, dict[float, float]] = field(default_factory=dict)


def _index(group: _Group, data: Mapping[str, list[_Sample]]) -> dict[tuple[str, str], _PodData]:
    ns_label, pod_label = group.key.namespace_label, group.key.pod_label
    pods: dict[tuple[str, str], _PodData] = defaultdict(_PodData)

    def pod_of(s: _Sample) -> tuple[str, str] | None:
        ns, pod = s.labels.get(ns_label), s.labels.get(pod_label)
        return None if ns is None or pod is None else (ns, pod)

    for s in data.get("heartbeat", []):
        if (k := pod_of(s)) is not None:
            pods[k].heartbeat = s.value
    # Gauges: pick, per pod and signal, the most preferred name present; count series per scrape key.
    # One metric may serve several signals (an override can point two signals at one gauge).
    name_rank: dict[str, list[tuple[Signal, int]]] = defaultdict(list)
    for sig in Signal:
        if SIGNAL_KIND[sig] is SignalKind.GAUGE:
            for rank, alt in enumerate(group.metrics.spellings(sig)):
                for n in alt:
                    name_rank[n].append((sig, rank))
    chosen: dict[tuple[tuple[str, str], Signal], int] = {}
    per_key: dict[tuple[tuple[str, str], Signal], dict[tuple[tuple[str, str], ...], list[float]]] = {}
    for s in data.get("gauges", []):
        k = pod_of(s)
        if k is None:
            continue
        for sig, rank in name_rank.get(s.labels.get("__name__", ""), ()):
            best = chosen.get((k, sig))
            if best is not None and best < rank:
                continue
            if best is None or rank < best:
                chosen[(k, sig)] = rank
                per_key[(k, sig)] = {}
            per_key[(k, sig)].setdefault(_scrape_key(s.labels), []).append(s.value)
    for (k, sig), by_scrape in per_key.items():
        values: list[float] = []
        for series in by_scrape.values():
            if len(series) > 1:
                pods[k].duplicates.add(sig.value)
            values.append(series[0])
        pods[k].gauges[sig] = values
    for sig in Signal:
        kind = SIGNAL_KIND[sig]
        for s in data.get(sig.value, []):
            if (k := pod_of(s)) is None:
                continue
            if kind is SignalKind.COUNTER:
                pods[k].counters[sig] = pods[k].counters.get(sig, 0.0) + s.value
            elif kind is SignalKind.HISTOGRAM:
                try:
                    le = float(s.labels["le"])
                except (KeyError, ValueError):
                    continue
                b = pods[k].buckets.setdefault(sig, {})
                b[le] = b.get(le, 0.0) + s.value
    return pods


def _assemble(group: _Group, data: Mapping[str, list[_Sample]], now: float, settings: PrometheusSettings,
              departed: Mapping[str, Mapping[Role, Sequence[str]]] | None = None) -> dict[str, Observation]:
    pods = _index(group, data)
    out: dict[str, Observation] = {}
    for q in group.pools:
        gone = (departed or {}).get(q.key, {})
        roles = {
            role: _role(group.metrics, q, role, [pods.get((q.namespace, p)) for p in names], names, now,
                        settings, [d for p in gone.get(role, ()) if (d := pods.get((q.namespace, p)))])
            for role, names in q.pods_by_role.items()
        }
        out[q.key] = Observation(time=now, roles=roles)
    return out


def _role(metrics: EngineMetrics, q: PoolQuery, role: Role, pod_data: list[_PodData | None],
          names: Sequence[str], now: float, settings: PrometheusSettings,
          departed: Sequence[_PodData] = ()) -> RoleObservation:
    """One role's observation: gauges and freshness from the listed pods, rates (counters and histogram
    buckets) from the fresh listed pods plus ``departed`` ones (pods of the role no longer listed whose
    series are still inside the rate window)."""
    flags: set[DataFlag] = set()
    notes: list[str] = []
    fresh: list[_PodData] = []
    stale, silent = [], []
    limit = q.staleness_s if q.staleness_s is not None and q.staleness_s > 0 else settings.staleness_limit_s
    for name, d in zip(names, pod_data, strict=True):
        if d is None or d.heartbeat is None:
            if name not in q.unready:  # a starting pod is not expected to export anything yet
                silent.append(name)
        elif not math.isfinite(d.heartbeat) or now - d.heartbeat > limit:
            stale.append(name)
        else:
            fresh.append(d)
    heartbeat = "/".join(metrics.heartbeat)
    if stale:
        flags.add(DataFlag.STALE)
        notes.append(f"{len(stale)} pod(s) with {heartbeat} older than {limit:g} s: "
                     f"{', '.join(stale[:5])}")
    if silent and fresh:
        flags.add(DataFlag.PARTIAL)
        notes.append(f"{len(silent)} of {len(names)} pod(s) export no {heartbeat}: {', '.join(silent[:5])}")
    if not fresh:
        if not stale and (silent or not names):
            flags.add(DataFlag.MISSING)
            notes.append(f"no pod of the role exports {heartbeat}" if names else "the role has no pods")
        elif not stale:
            notes.append("no pod of the role is Ready yet")
        return RoleObservation(replicas=len(names), ready=len(names), reporting=0, flags=frozenset(flags),
                               notes=tuple(notes))

    values: dict[str, float | None] = {}
    not_finite: list[str] = []

    def finite(name: str, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            not_finite.append(name)
            return None
        return v

    # Gauges: sum (queue, running) or mean/max (KV) over the fresh pods' series.
    for sig in (Signal.QUEUE, Signal.RUNNING, Signal.KV):
        if not metrics.spellings(sig):
            notes.append(f"{sig.value}: not exported by {metrics.engine}")
            continue
        per_pod = [d.gauges[sig] for d in fresh if sig in d.gauges]
        if any(sig.value in d.duplicates for d in fresh):
            flags.add(DataFlag.DUPLICATE)
            notes.append(f"{sig.value}: several series per pod differing only in scrape labels")
        if not per_pod:
            flags.add(DataFlag.MISSING)
            notes.append(f"{sig.value}: no {'/'.join(metrics.names[sig])} series")
            continue
        if len(per_pod) < len(fresh):
            flags.add(DataFlag.PARTIAL)
            notes.append(f"{sig.value}: {len(fresh) - len(per_pod)} reporting pod(s) lack the series")
        flat = [v for vs in per_pod for v in vs]
        if any(not math.isfinite(v) for v in flat):
            not_finite.append(sig.value)
            continue
        if sig is Signal.KV:
            pod_means = [sum(vs) / len(vs) for vs in per_pod]
            values["kv_utilization"] = sum(pod_means) / len(pod_means)
            values["kv_utilization_max"] = max(flat)
        else:
            values[sig.value] = sum(flat)

    # Counters: rate summed over fresh pods and pods that left within the window.
    rated = [*fresh, *departed]
    for sig in (Signal.ARRIVALS, Signal.PROMPT_TOKENS, Signal.GENERATION_TOKENS):
        if not metrics.spellings(sig):
            notes.append(f"{sig.value}: not exported by {metrics.engine}")
            continue
        rates = [d.counters[sig] for d in rated if sig in d.counters]
        if not rates:
            flags.add(DataFlag.MISSING)
            notes.append(f"{sig.value}: no {'/'.join(metrics.names[sig])} series")
            continue
        values[sig.value] = finite(sig.value, sum(rates))

    # Histograms: bucket rates summed over fresh pods, then Prometheus's histogram_quantile.
    # On the entry role of an engine that counts requests at completion, arrivals are first tokens (the
    # TTFT histogram's count), which replaces the completion counter read above.
    first_tokens_are_arrivals = metrics.arrivals_at_completion and role in (Role.PREFILL, Role.BOTH) and bool(
        metrics.spellings(Signal.TTFT))
    for sig in (Signal.TTFT, Signal.ITL, Signal.E2E):
        if not metrics.spellings(sig):
            notes.append(f"{sig.value}: not exported by {metrics.engine}")
            continue
        summed: dict[float, float] = {}
        for d in rated:
            for le, r in d.buckets.get(sig, {}).items():
                summed[le] = summed.get(le, 0.0) + r
        if not summed:
            flags.add(DataFlag.MISSING)
            notes.append(f"{sig.value}: no {'/'.join(metrics.names[sig])}_bucket series")
            continue
        if any(not math.isfinite(r) for r in summed.values()):
            not_finite.append(sig.value)
            continue
        if summed.get(math.inf, 0.0) <= 0:
            if sig is Signal.TTFT and first_tokens_are_arrivals:
                values["arrival_rate"] = 0.0  # no first token in the window: nothing arrived to be served
            # No request finished in the window: the percentile is unknown, and that is not a fault.
            notes.append(f"{sig.value}: no requests in the {q.window_s:g} s window")
            continue
        if sig is Signal.TTFT and first_tokens_are_arrivals:
            # The +Inf bucket's rate is rate(<ttft>_count): first tokens per second.
            values["arrival_rate"] = finite("arrival_rate", summed.get(math.inf, 0.0))
        quantile = q.percentiles.get(sig.value, settings.default_percentile)
        values[sig.value] = finite(sig.value, histogram_quantile(quantile, summed.items()))

    if not_finite:
        flags.add(DataFlag.NOT_FINITE)
        notes.append(f"non-finite values in {', '.join(sorted(set(not_finite)))}")
    return RoleObservation(
        replicas=len(names), ready=len(names), reporting=len(fresh), flags=frozenset(flags),
        notes=tuple(notes),
        ttft=values.get("ttft"), itl=values.get("itl"), e2e=values.get("e2e"),
        queue_depth=values.get("queue_depth"), running=values.get("running"),
        kv_utilization=values.get("kv_utilization"), kv_utilization_max=values.get("kv_utilization_max"),
        arrival_rate=values.get("arrival_rate"), prompt_tokens_rate=values.get("prompt_tokens_rate"),
        generation_tokens_rate=values.get("generation_tokens_rate"),
    )
