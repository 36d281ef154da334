"""The fleet model: replicas with continuous batching, KV-cache admission and preemption, routing, life cycle.

A discrete-event simulation at request/batch granularity. Between events that change a replica's batch
(an arrival it can admit, a completion, a KV overflow) its decode batch is constant, so the replica jumps
over all the identical decode iterations at once: ``k`` steps of ``decode_step_s(b, context)`` where ``k`` is
the number of steps to the next completion or KV overflow, computed analytically. Prefill work is simulated
per iteration (vLLM's chunked prefill: each iteration spends a token budget first on one token per running
sequence, then on prompt chunks, first come first served), which is also where the interference between
prefill and decode shows in the inter-token gaps of the running sequences.

Iteration time of a mixed iteration (``b`` decoding sequences, ``c`` prompt tokens) is
``decode_step_s(b, mean_context) + prefill_time_s(c)``; a pure decode iteration is ``decode_step_s``; a pure
prefill iteration is ``prefill_time_s(c)``. The sum counts the weight reads twice, so a mixed iteration is
over-estimated by at most one batch-1 decode step (≈ 30 ms on Llama2-70B/H100, ≈ 3 % of an 8k-token chunk).

KV cache is accounted in tokens (a sequence holds ``input + generated`` tokens); vLLM's 16-token blocks are
not modelled. Preemption is recompute-style as in vLLM V1: the most recently admitted running sequence is
evicted, goes back to the head of the waiting queue and re-prefills ``input + generated`` tokens when
re-admitted.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from autoscaler.core.profile import PerformanceProfile
from autoscaler.core.types import Role
from autoscaler.sim.buckets import E2E_BUCKETS, ITL_BUCKETS, TTFT_BUCKETS
from autoscaler.sim.config import Mode, RouterKind, SimConfig, default_chunk_tokens

__all__ = ["Fleet", "Replica", "ReplicaState", "Timing"]

_INF = math.inf
# event kinds
_EV_STEP = 0  # a replica's iteration or decode run ends (versioned: stale if the run was truncated)
_EV_READY = 1  # a replica finished its cold start
_EV_TRANSFER = 2  # a prompt's KV cache reached the decode side (disaggregated)
_EV_DRAIN_DEADLINE = 3  # a draining replica's grace period is over

# replica activity
_IDLE = 0
_ITER = 1  # one prefill or mixed iteration in flight
_RUN = 2  # a run of identical pure-decode iterations in flight

# token-gap histogram resolution for exact-ish ITL percentiles across tokens: 0.1 % wide log bins
_GAP_RES = 1000.0


class ReplicaState(IntEnum):
    """Life cycle: requested → cold start (STARTING) → READY → DRAINING → GONE."""

    STARTING = 0
    READY = 1
    DRAINING = 2
    GONE = 3


class Timing:
    """Cached profile calls (the hot loop evaluates the same few points over and over).

    Mean decode context is rounded to ``ctx_quantum`` tokens before the profile is called.
    """

    __slots__ = ("_decode", "_prefill", "_q", "profile")

    def __init__(self, profile: PerformanceProfile, ctx_quantum: int = 16) -> None:
        self.profile = profile
        self._q = max(1, ctx_quantum)
        self._decode: dict[tuple[int, int], float] = {}
        self._prefill: dict[int, float] = {}

    def decode(self, batch: int, ctx: float) -> float:
        """Seconds of one decode iteration of ``batch`` sequences with mean context ``ctx`` tokens."""
        key = (batch, int(ctx / self._q + 0.5))
        v = self._decode.get(key)
        if v is None:
            v = float(self.profile.decode_step_s(batch, float(max(1, key[1] * self._q))))
            self._decode[key] = v
        return v

    def prefill(self, tokens: int) -> float:
        """Seconds to prefill ``tokens`` prompt tokens in one iteration."""
        v = self._prefill.get(tokens)
        if v is None:
            v = float(self.profile.prefill_time_s(float(tokens)))
            self._prefill[tokens] = v
        return v


class _Request:
    __slots__ = (
        "arrival",
        "entry",
        "epoch",
        "first_t",
        "generated",
        "hashes",
        "idx",
        "inp",
        "join_gen",
        "join_step",
        "kv_ready",
        "last_t",
        "out",
        "prefill_left",
        "reserved",
    )

    def __init__(self, idx: int, arrival: float, inp: int, out: int, hashes: tuple[int, ...] | None) -> None:
        self.idx = idx
        self.arrival = arrival
        self.inp = inp
        self.out = out
        self.hashes = hashes
        self.generated = 0  # tokens emitted so far (kept across preemptions)
        self.prefill_left = 0
        self.reserved = 0  # KV tokens reserved while prefilling
        self.join_step = 0
        self.join_gen = 0
        self.epoch = 0  # bumped when the request leaves a running batch: invalidates heap entries
        self.first_t = -1.0
        self.last_t = -1.0
        self.kv_ready = False  # True when its KV arrives by transfer (disaggregated decode side)
        self.entry: Replica | None = None  # replica that prefilled it (owns its TTFT histogram)


class Replica:
    """One simulated serving replica and the Prometheus counters/gauges it would export.

    Histogram counts are per bucket (not cumulative), last entry is ``+Inf``; sums in seconds.
    """

    __slots__ = (
        "S",
        "b",
        "busy",
        "done_heap",
        "e2e_counts",
        "e2e_n",
        "e2e_sum",
        "gen_tokens",
        "gone_t",
        "itl_counts",
        "itl_n",
        "itl_sum",
        "kv_reserved",
        "lru",
        "name",
        "outstanding",
        "plan",
        "preemptions",
        "prefilling",
        "prompt_tokens",
        "ready_t",
        "requested_t",
        "role",
        "run_acc",
        "run_dt",
        "run_k",
        "run_t0",
        "running",
        "state",
        "step",
        "success",
        "ttft_counts",
        "ttft_n",
        "ttft_sum",
        "uid",
        "version",
        "waiting",
    )

    def __init__(self, uid: int, role: Role, requested_t: float) -> None:
        self.uid = uid
        self.name = f"{role.value}-{uid}"
        self.role = role
        self.state = ReplicaState.STARTING
        self.requested_t = requested_t
        self.ready_t = _INF
        self.gone_t = _INF
        self.waiting: deque[_Request] = deque()
        self.prefilling: list[_Request] = []
        self.running: dict[_Request, None] = {}  # admission order; the last one is preempted first
        self.done_heap: list[tuple[int, int, int, _Request]] = []  # (end step, idx, epoch, request)
        self.b = 0  # running (decoding) sequences
        self.S = 0  # Σ (input + generated at join − join step): KV of running = S + b·step
        self.step = 0  # decode iterations completed
        self.kv_reserved = 0
        self.outstanding = 0  # waiting + prefilling + running (the router's load signal)
        self.busy = _IDLE
        self.version = 0
        self.run_t0 = 0.0
        self.run_dt = 0.0
        self.run_k = 0
        self.run_acc = 0  # steps of the current run already accounted in counters (scrape flush)
        self.plan: list[tuple[_Request, int]] = []
        self.lru: OrderedDict[int, None] = OrderedDict()
        self.ttft_counts = [0] * (len(TTFT_BUCKETS) + 1)
        self.itl_counts = [0] * (len(ITL_BUCKETS) + 1)
        self.e2e_counts = [0] * (len(E2E_BUCKETS) + 1)
        self.ttft_sum = self.itl_sum = self.e2e_sum = 0.0
        self.ttft_n = self.itl_n = self.e2e_n = 0
        self.prompt_tokens = 0
        self.gen_tokens = 0
        self.success = 0
        self.preemptions = 0

    @property
    def accepting(self) -> bool:
        """True when the router may send new requests here."""
        return self.state is ReplicaState.READY

    def num_running(self) -> int:
        """Sequences scheduled (decoding or prefilling), vLLM's ``num_requests_running``."""
        return self.b + len(self.prefilling)

    def kv_tokens_at(self, t: float) -> int:
        """KV tokens held at ``t`` (between events, from the steps of the current run elapsed by ``t``)."""
        return self.S + self.b * (self.step + self._steps_elapsed(t)) + self.kv_reserved

    def _steps_elapsed(self, t: float) -> int:
        if self.busy != _RUN or self.run_dt <= 0.0:
            return 0
        return min(self.run_k, max(0, int((t - self.run_t0) / self.run_dt + 1e-9)))


class Fleet:
    """The fleet model, advanced with :meth:`run` up to a time; scale with :meth:`scale_to`.

    Args:
        config: fleet shape and engine settings.
        profiles: performance profile per role.
        arrivals_s, input_tokens, output_tokens: the trace, sorted by arrival (seconds from t=0).
        hash_ids: optional prefix-block ids per request (Mooncake), for prefix-aware routing and reuse.
        seed: seeds the router's tie-breaking.
    """

    def __init__(
        self,
        config: SimConfig,
        profiles: Mapping[Role, PerformanceProfile],
        arrivals_s: npt.NDArray[np.float64],
        input_tokens: npt.NDArray[np.int64],
        output_tokens: npt.NDArray[np.int64],
        hash_ids: Sequence[tuple[int, ...]] | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self.config = config
        self.profiles = dict(profiles)
        self.timing = {role: Timing(p, config.ctx_quantum_tokens) for role, p in self.profiles.items()}
        self._arr: list[float] = [float(x) for x in arrivals_s]
        self._inp: list[int] = [max(1, int(x)) for x in input_tokens]
        self._out: list[int] = [max(1, int(x)) for x in output_tokens]
        self._hashes = hash_ids
        self.n = len(self._arr)
        self._next = 0
        self._rng = np.random.default_rng(seed)
        self._heap: list[tuple[float, int, int, object, int]] = []
        self._seq = 0
        self.now = 0.0
        self.replicas: list[Replica] = []
        self._ready: dict[Role, list[Replica]] = {role: [] for role in config.roles}
        self._pending: dict[Role, deque[_Request]] = {role: deque() for role in config.roles}
        self._uid = 0
        self._target: dict[Role, int] = {role: 0 for role in config.roles}
        self.in_flight = 0
        # per-request results (seconds); inf marks a failed request
        self.ttft = np.full(self.n, np.nan)
        self.itl = np.full(self.n, np.nan)
        self.e2e = np.full(self.n, np.nan)
        self.first_token_t = np.full(self.n, np.nan)
        self.failed = 0
        self.prefill_tokens_computed = 0
        self.prefix_hit_tokens = 0
        self.token_gaps: dict[int, int] = {}  # log-bin → tokens, for ITL percentiles across tokens
        self.entry_role = config.entry_role
        self.disaggregated = config.mode is Mode.DISAGGREGATED
        self._cap: dict[Role, int] = {}
        self._max_batch: dict[Role, int] = {}
        self._chunk: dict[Role, int] = {}
        self._lru_blocks: dict[Role, int] = {}
        for role, p in self.profiles.items():
            self._cap[role] = int(p.kv_capacity_tokens)
            self._max_batch[role] = int(config.max_batch_size or p.max_batch_size)
            self._chunk[role] = int(config.chunk_tokens or default_chunk_tokens(p.accelerator))
            self._lru_blocks[role] = max(1, int(p.kv_capacity_tokens) // config.prefix_block_tokens)

    # ------------------------------------------------------------------ life cycle and scaling

    def add_replica(self, role: Role, t: float, *, warm: bool = False) -> Replica:
        """Request a replica at ``t``; it serves after the profile's cold start (at once when ``warm``)."""
        self._uid += 1
        rep = Replica(self._uid, role, t)
        self.replicas.append(rep)
        self._target[role] = len(self.active(role))
        if warm:
            self._make_ready(rep, t)
        else:
            self._push(t + float(self.profiles[role].cold_start_s), _EV_READY, rep, 0)
        return rep

    def target(self, role: Role) -> int:
        """Replicas last asked for on ``role`` (the ``/scale`` ``spec.replicas`` a controller would see)."""
        return self._target[role]

    def active(self, role: Role) -> list[Replica]:
        """Replicas of ``role`` that count towards its replica count: starting or ready (not draining)."""
        return [
            r
            for r in self.replicas
            if r.role is role and r.state in (ReplicaState.STARTING, ReplicaState.READY)
        ]

    def scale_to(self, role: Role, desired: int, t: float) -> int:
        """Make ``role`` have ``desired`` starting+ready replicas; returns the change applied.

        Scale-down cancels replicas still cold-starting first (newest first), then drains the least
        loaded ready replicas (newest first among equals).
        """
        current = self.active(role)
        self._target[role] = desired
        delta = desired - len(current)
        for _ in range(max(0, delta)):
            self.add_replica(role, t)
        starting = sorted((r for r in current if r.state is ReplicaState.STARTING), key=lambda r: -r.requested_t)
        ready = sorted((r for r in current if r.state is ReplicaState.READY),
                       key=lambda r: (r.outstanding, -r.requested_t, -r.uid))
        for rep in (starting + ready)[: max(0, -delta)]:
            self._take_away(rep, t)
        return delta

    def remove(self, rep: Replica, t: float) -> None:
        """Take this replica away at ``t`` (its Pod was deleted): a cold start is cancelled, a ready one drains.
        :meth:`scale_to` chooses which replicas go; this is for a caller that is told which one went."""
        self._take_away(rep, t)
        self._target[rep.role] = len(self.active(rep.role))

    def _take_away(self, rep: Replica, t: float) -> None:
        if rep.state is ReplicaState.STARTING:
            rep.state, rep.gone_t = ReplicaState.GONE, t
        elif rep.state is ReplicaState.READY:
            self._drain(rep, t)

    def _make_ready(self, rep: Replica, t: float) -> None:
        rep.state = ReplicaState.READY
        rep.ready_t = t
        self._ready[rep.role].append(rep)
        pending = self._pending[rep.role]
        while pending:
            req = pending.popleft()
            if rep.role is Role.DECODE:
                self._route_decode(req, t)
            else:
                self._route_entry(req, t)

    def _drain(self, rep: Replica, t: float) -> None:
        rep.state = ReplicaState.DRAINING
        self._ready[rep.role].remove(rep)
        if rep.busy == _IDLE and rep.outstanding == 0:
            self._gone(rep, t)
        else:
            self._push(t + self.config.drain_timeout_s, _EV_DRAIN_DEADLINE, rep, 0)

    def _gone(self, rep: Replica, t: float) -> None:
        rep.state = ReplicaState.GONE
        rep.gone_t = t
        rep.version += 1
        rep.busy = _IDLE

    def _drain_deadline(self, rep: Replica, t: float) -> None:
        if rep.state is not ReplicaState.DRAINING:
            return
        lost = list(rep.waiting) + list(rep.prefilling) + list(rep.running)
        for req in lost:
            self._fail(req)
        rep.waiting.clear()
        rep.prefilling.clear()
        rep.running.clear()
        rep.b = rep.S = rep.kv_reserved = rep.outstanding = 0
        self._gone(rep, t)

    # ------------------------------------------------------------------ event loop

    def _push(self, t: float, kind: int, obj: object, version: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, obj, version))

    @property
    def arrivals_done(self) -> bool:
        """True when every request of the trace has arrived."""
        return self._next >= self.n

    @property
    def idle(self) -> bool:
        """True when all requests have arrived and none is in flight."""
        return self._next >= self.n and self.in_flight == 0

    def run(self, until: float) -> None:
        """Process every arrival and event with time ≤ ``until`` (seconds from t=0)."""
        heap = self._heap
        arr = self._arr
        n = self.n
        pop = heapq.heappop
        while True:
            i = self._next
            ta = arr[i] if i < n else _INF
            th = heap[0][0] if heap else _INF
            if th <= ta:
                if th > until:
                    break
                t, _, kind, obj, ver = pop(heap)
                self.now = t
                if kind == _EV_STEP:
                    rep = obj
                    assert isinstance(rep, Replica)
                    if rep.version == ver:
                        self._step_end(rep, t)
                elif kind == _EV_TRANSFER:
                    assert isinstance(obj, _Request)
                    self._route_decode(obj, t)
                elif kind == _EV_READY:
                    assert isinstance(obj, Replica)
                    if obj.state is ReplicaState.STARTING:
                        self._make_ready(obj, t)
                else:
                    assert isinstance(obj, Replica)
                    self._drain_deadline(obj, t)
            else:
                if ta > until:
                    break
                self.now = ta
                self._next = i + 1
                self.in_flight += 1
                hashes = self._hashes[i] if self._hashes is not None else None
                self._route_entry(_Request(i, ta, self._inp[i], self._out[i], hashes), ta)
        self.now = max(self.now, until)

    def fail_in_flight(self) -> None:
        """Count every request still queued or running as failed (used when the tail limit is hit)."""
        for rep in self.replicas:
            for req in [*rep.waiting, *rep.prefilling, *rep.running]:
                self._fail(req)
        for q in self._pending.values():
            for req in q:
                self._fail(req)
        for _, _, kind, obj, _ in self._heap:
            if kind == _EV_TRANSFER:
                assert isinstance(obj, _Request)
                self._fail(obj)
        self.in_flight = 0

    # ------------------------------------------------------------------ routing

    def _pick(self, reps: list[Replica], req: _Request) -> Replica:
        best = min(r.outstanding for r in reps)
        if self.config.router is RouterKind.PREFIX_AWARE and req.hashes and self.entry_role is reps[0].role:
            best_match = 0
            chosen: Replica | None = None
            limit = best + self.config.prefix_slack
            for r in reps:
                if r.outstanding > limit:
                    continue
                m = _prefix_match(r.lru, req.hashes)
                if m > best_match or (
                    m == best_match and chosen is not None and r.outstanding < chosen.outstanding
                ):
                    best_match = m
                    chosen = r
            if chosen is not None and best_match > 0:
                return chosen
        ties = [r for r in reps if r.outstanding == best]
        if len(ties) == 1:
            return ties[0]
        return ties[int(self._rng.integers(len(ties)))]

    def _route_entry(self, req: _Request, t: float) -> None:
        reps = self._ready[self.entry_role]
        if not reps:
            self._pending[self.entry_role].append(req)
            return
        rep = self._pick(reps, req)
        req.entry = rep
        self._enqueue(rep, req, t)

    def _route_decode(self, req: _Request, t: float) -> None:
        reps = self._ready[Role.DECODE]
        if not reps:
            self._pending[Role.DECODE].append(req)
            return
        self._enqueue(self._pick(reps, req), req, t)

    def _enqueue(self, rep: Replica, req: _Request, t: float) -> None:
        rep.waiting.append(req)
        rep.outstanding += 1
        busy = rep.busy
        if busy == _IDLE:
            self._schedule(rep, t)
        elif busy == _RUN and len(rep.waiting) == 1:
            # Only interrupt a decode run if the newcomer could be admitted: KV only grows until the next
            # completion, so a request that does not fit now will not fit before the run's natural end.
            e = math.ceil((t - rep.run_t0) / rep.run_dt - 1e-9) if rep.run_dt > 0 else 0
            if e >= rep.run_k:
                return
            need = req.inp + (1 if req.kv_ready else req.generated)
            kv = rep.S + rep.b * (rep.step + e) + rep.kv_reserved
            if rep.b + len(rep.prefilling) < self._max_batch[rep.role] and kv + need <= self._cap[rep.role]:
                rep.run_k = e
                rep.version += 1
                self._push(rep.run_t0 + e * rep.run_dt, _EV_STEP, rep, rep.version)

    # ------------------------------------------------------------------ replica scheduling

    def _admit(self, rep: Replica, t: float) -> None:
        waiting = rep.waiting
        role = rep.role
        cap = self._cap[role]
        max_batch = self._max_batch[role]
        while waiting:
            if rep.b + len(rep.prefilling) >= max_batch:
                return
            req = waiting[0]
            need = req.inp + 1 if req.kv_ready else req.inp + req.generated
            if rep.S + rep.b * rep.step + rep.kv_reserved + need > cap:
                if rep.b == 0 and not rep.prefilling:
                    # Larger than the whole KV cache: vLLM rejects such a request.
                    waiting.popleft()
                    rep.outstanding -= 1
                    self._fail(req)
                    continue
                return
            waiting.popleft()
            if req.kv_ready:
                # Disaggregated decode side: the prompt's KV arrived; the first token is delivered now.
                req.kv_ready = False
                req.generated = 1
                self._first_token(req, t)
                self._join(rep, req, t)
                continue
            cached = 0
            if req.hashes and role is self.entry_role and req.generated == 0:
                m = _prefix_match(rep.lru, req.hashes)
                if m:
                    cached = min(m * self.config.prefix_block_tokens, need - 1)
                    for h in req.hashes[:m]:
                        rep.lru.move_to_end(h)
                    self.prefix_hit_tokens += cached
            req.prefill_left = need - cached
            req.reserved = need
            rep.kv_reserved += need
            rep.prefilling.append(req)

    def _join(self, rep: Replica, req: _Request, t: float) -> None:
        remaining = req.out - req.generated
        if remaining <= 0:
            self._complete(rep, req, t)
            return
        req.join_step = rep.step
        req.join_gen = req.generated
        req.epoch += 1
        rep.S += req.inp + req.generated - rep.step
        rep.b += 1
        rep.running[req] = None
        heapq.heappush(rep.done_heap, (rep.step + remaining, req.idx, req.epoch, req))

    def _leave_running(self, rep: Replica, req: _Request) -> None:
        del rep.running[req]
        rep.b -= 1
        rep.S -= req.inp + req.join_gen - req.join_step
        req.generated = req.join_gen + rep.step - req.join_step
        req.epoch += 1

    def _schedule(self, rep: Replica, t: float) -> None:
        """Start the next iteration (or decode run) at a boundary ``t``; the replica is not busy."""
        if rep.state is ReplicaState.GONE:
            return
        self._admit(rep, t)
        role = rep.role
        timing = self.timing[role]
        if rep.prefilling:
            budget = max(1, self._chunk[role] - rep.b)
            plan: list[tuple[_Request, int]] = []
            tokens = 0
            for req in rep.prefilling:
                c = req.prefill_left if req.prefill_left < budget else budget
                plan.append((req, c))
                tokens += c
                budget -= c
                if budget <= 0:
                    break
            dt = timing.prefill(tokens)
            if rep.b:
                dt += timing.decode(rep.b, (rep.S + rep.b * rep.step) / rep.b)
            rep.plan = plan
            rep.busy = _ITER
            rep.run_t0 = t
            rep.run_dt = dt
            rep.run_k = 1
            rep.run_acc = 0
            self._push(t + dt, _EV_STEP, rep, rep.version)
            return
        if rep.b:
            cap = self._cap[role]
            heap = rep.done_heap
            while True:
                while heap and (heap[0][3].epoch != heap[0][2]):
                    heapq.heappop(heap)
                k_done = heap[0][0] - rep.step
                kv = rep.S + rep.b * rep.step + rep.kv_reserved
                k_kv = (cap - kv) // rep.b
                if k_kv >= 1:
                    break
                self._preempt(rep, t)
                if not rep.b:
                    self._schedule(rep, t)
                    return
            k = k_done if k_done < k_kv else k_kv
            ctx = (rep.S + rep.b * rep.step) / rep.b + (k - 1) * 0.5
            dt = timing.decode(rep.b, ctx)
            rep.busy = _RUN
            rep.run_t0 = t
            rep.run_dt = dt
            rep.run_k = k
            rep.run_acc = 0
            self._push(t + k * dt, _EV_STEP, rep, rep.version)
            return
        rep.busy = _IDLE
        if rep.state is ReplicaState.DRAINING and rep.outstanding == 0:
            self._gone(rep, t)

    def _preempt(self, rep: Replica, t: float) -> None:
        req = next(reversed(rep.running))
        self._leave_running(rep, req)
        req.last_t = t
        rep.waiting.appendleft(req)
        rep.preemptions += 1

    def _account_decode(self, rep: Replica, steps: int, dt: float) -> None:
        n = steps * rep.b
        if n <= 0:
            return
        rep.itl_counts[bisect_left(ITL_BUCKETS, dt)] += n
        rep.itl_sum += n * dt
        rep.itl_n += n
        rep.gen_tokens += n
        key = int(math.log(dt) * _GAP_RES) if dt > 0 else -(10**9)
        self.token_gaps[key] = self.token_gaps.get(key, 0) + n

    def _step_end(self, rep: Replica, t: float) -> None:
        busy = rep.busy
        rep.busy = _IDLE
        if busy == _RUN:
            self._account_decode(rep, rep.run_k - rep.run_acc, rep.run_dt)
            rep.step += rep.run_k
            self._complete_due(rep, t)
        elif busy == _ITER:
            if rep.b:
                self._account_decode(rep, 1, rep.run_dt)
                rep.step += 1
                self._complete_due(rep, t)
            plan = rep.plan
            rep.plan = []
            for req, c in plan:
                req.prefill_left -= c
                rep.prompt_tokens += c
                self.prefill_tokens_computed += c
                if req.prefill_left == 0:
                    rep.prefilling.remove(req)
                    rep.kv_reserved -= req.reserved
                    req.reserved = 0
                    self._prefill_done(rep, req, t)
        self._schedule(rep, t)

    def _complete_due(self, rep: Replica, t: float) -> None:
        heap = rep.done_heap
        step = rep.step
        while heap and heap[0][0] <= step:
            _, _, epoch, req = heapq.heappop(heap)
            if req.epoch != epoch:
                continue
            self._leave_running(rep, req)
            self._complete(rep, req, t)

    def _prefill_done(self, rep: Replica, req: _Request, t: float) -> None:
        if req.hashes and rep.role is self.entry_role:
            lru = rep.lru
            for h in req.hashes:
                lru[h] = None
                lru.move_to_end(h)
            limit = self._lru_blocks[rep.role]
            while len(lru) > limit:
                lru.popitem(last=False)
        if rep.role is Role.PREFILL:
            # Hand-off: the prompt's KV moves to a decode replica; the prefill replica is done with it.
            rep.outstanding -= 1
            req.kv_ready = True
            transfer = float(self.profiles[Role.PREFILL].kv_transfer_s(float(req.inp)))
            self._push(t + transfer, _EV_TRANSFER, req, 0)
            return
        if req.generated == 0:
            self._first_token(req, t)
        else:
            gap = t - req.last_t
            rep.itl_counts[bisect_left(ITL_BUCKETS, gap)] += 1
            rep.itl_sum += gap
            rep.itl_n += 1
            rep.gen_tokens += 1
            key = int(math.log(gap) * _GAP_RES) if gap > 0 else -(10**9)
            self.token_gaps[key] = self.token_gaps.get(key, 0) + 1
        req.generated += 1
        self._join(rep, req, t)

    def _first_token(self, req: _Request, t: float) -> None:
        ttft = t - req.arrival
        self.ttft[req.idx] = ttft
        self.first_token_t[req.idx] = t
        req.first_t = t
        owner = req.entry
        if owner is not None:
            owner.ttft_counts[bisect_left(TTFT_BUCKETS, ttft)] += 1
            owner.ttft_sum += ttft
            owner.ttft_n += 1
            if owner.role is Role.PREFILL:
                return
        # the first token is counted as generated where it is produced (aggregated) or delivered (decode)

    def _complete(self, rep: Replica, req: _Request, t: float) -> None:
        rep.outstanding -= 1
        self.in_flight -= 1
        e2e = t - req.arrival
        self.e2e[req.idx] = e2e
        if req.out > 1:
            self.itl[req.idx] = (t - req.first_t) / (req.out - 1)
        rep.e2e_counts[bisect_left(E2E_BUCKETS, e2e)] += 1
        rep.e2e_sum += e2e
        rep.e2e_n += 1
        rep.success += 1
        rep.gen_tokens += 1  # the first token (the rest were counted per decode step)
        if rep.state is ReplicaState.DRAINING and rep.outstanding == 0 and not rep.b and not rep.prefilling:
            # finishing work happens inside _schedule, which marks the replica gone once idle
            pass

    def _fail(self, req: _Request) -> None:
        i = req.idx
        if not math.isnan(self.e2e[i]):
            return
        self.failed += 1
        self.in_flight -= 1
        if math.isnan(self.ttft[i]):
            self.ttft[i] = _INF
        self.itl[i] = _INF
        self.e2e[i] = _INF

    # ------------------------------------------------------------------ signals

    def flush(self, t: float) -> None:
        """Account decode tokens generated up to ``t`` by runs still in flight (before a scrape)."""
        for rep in self.replicas:
            if rep.busy == _RUN and rep.state is not ReplicaState.GONE:
                e = rep._steps_elapsed(t)
                if e > rep.run_acc:
                    self._account_decode(rep, e - rep.run_acc, rep.run_dt)
                    rep.run_acc = e

    def kv_capacity(self, role: Role) -> int:
        """KV-cache capacity of one replica of ``role``, tokens."""
        return self._cap[role]

    def scraped(self) -> Iterable[Replica]:
        """Replicas whose ``/metrics`` a scrape would reach: ready or draining."""
        return (r for r in self.replicas if r.state in (ReplicaState.READY, ReplicaState.DRAINING))

    def gpu_seconds(self, end: float, start: float = 0.0) -> dict[Role, float]:
        """GPU-seconds billed per role between ``start`` and ``end``: from request until gone."""
        out = {role: 0.0 for role in self.config.roles}
        for rep in self.replicas:
            stop = min(rep.gone_t, end)
            begin = max(rep.requested_t, start)
            out[rep.role] += max(0.0, stop - begin) * self.profiles[rep.role].gpus_per_replica
        return out


def _prefix_match(lru: OrderedDict[int, None], hashes: tuple[int, ...]) -> int:
    """Number of leading blocks of ``hashes`` present in ``lru``."""
    m = 0
    for h in hashes:
        if h not in lru:
            break
        m += 1
    return m
