"""Level-based reconciliation of one InferenceAutoscaler: read → validate → resolve → observe → decide →
actuate → status → publish. Every step reads the cluster as it is now, so a restart (or a second attempt
after an error) converges without repeating an action.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from autoscaler.api.times import rfc3339
from autoscaler.api.v1alpha1 import (
    Actuation,
    InferenceAutoscalerSpec,
    ManualChangePolicy,
    parse_spec_from_cluster,
)
from autoscaler.core.types import DataFlag, Decision, Observation, Policy, ReasonCode, Role, RoleObservation
from autoscaler.errors import ConflictError, InvalidSpecError, NotFoundError, PermanentError, ResolutionError
from autoscaler.ports import (
    Clock,
    DecisionBoard,
    DecisionRecord,
    EventSink,
    Fleet,
    MetricsSource,
    ObjectCache,
    PoolQuery,
    RoleTarget,
    ScaleState,
    StatusSink,
)
from autoscaler.retry import equal_jitter, retrying, stop_after_attempt

__all__ = ["CONDITION_TYPES", "MetricsBatcher", "Reconciler", "ResourceMemory", "SystemClock", "build_conditions"]

log = structlog.get_logger("autoscaler.controller")

CONDITION_TYPES = ("Ready", "TargetsResolved", "MetricsAvailable", "SLOMet", "ScalingLimited", "BudgetLimited")
# (type, status) pairs that deserve a Warning event; every other condition change is Normal.
_WARNING = {
    ("Ready", "False"),
    ("TargetsResolved", "False"),
    ("MetricsAvailable", "False"),
    ("SLOMet", "False"),
    ("BudgetLimited", "True"),
}
_LIMITING = {ReasonCode.AT_MAX, ReasonCode.AT_MIN, ReasonCode.RATE_LIMITED, ReasonCode.STABILIZED}
# pauses between the five attempts of a scale patch that met a 409, seconds
_CONFLICT_WAIT = equal_jitter(base=0.03, cap=0.5)


def _conflict(err: BaseException) -> bool:
    return isinstance(err, ConflictError)


class SystemClock:
    """Wall-clock :class:`~autoscaler.ports.Clock`."""

    def now(self) -> float:
        """Unix seconds."""
        import time

        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        await asyncio.sleep(seconds)


# ------------------------------------------------------------------------------------------ metrics batching


SourceFactory = Callable[[InferenceAutoscalerSpec], tuple[str, MetricsSource]]


class MetricsBatcher:
    """Collects the pool queries of all resources due at about the same time into one ``observe`` call per
    metrics source, so a tick costs a number of Prometheus queries that does not grow with the resources.

    Args:
        source_for: ``spec -> (source key, MetricsSource)``; queries with the same key are batched together
            (e.g. one key per Prometheus URL).
        linger_s: how long the first query of a batch waits for others, seconds.
    """

    def __init__(self, source_for: SourceFactory, linger_s: float = 0.05) -> None:
        self.source_for = source_for
        self.linger_s = linger_s
        self.calls = 0
        self._pending: dict[str, list[tuple[PoolQuery, asyncio.Future[Observation]]]] = {}
        self._sources: dict[str, MetricsSource] = {}
        self._flushers: set[asyncio.Task[None]] = set()

    async def observe(self, spec: InferenceAutoscalerSpec, query: PoolQuery, now: float) -> Observation:
        """The observation of one pool, from a batched call."""
        key, source = self.source_for(spec)
        self._sources[key] = source
        fut: asyncio.Future[Observation] = asyncio.get_running_loop().create_future()
        batch = self._pending.setdefault(key, [])
        batch.append((query, fut))
        if len(batch) == 1:
            task = asyncio.create_task(self._flush(key, now), name=f"metrics batch {key}")
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return await fut

    async def _flush(self, key: str, now: float) -> None:
        await asyncio.sleep(self.linger_s)
        batch = self._pending.pop(key, [])
        if not batch:
            return
        self.calls += 1
        try:
            results: Mapping[str, Observation] = await self._sources[key].observe([q for q, _ in batch], now)
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as err:  # a source must not raise, but one that does must not take the tick down
            results = {}
            error = f"{type(err).__name__}: {err}"
        else:
            error = "no observation returned for this pool"
        for query, fut in batch:
            if fut.done():
                continue
            obs = results.get(query.key)
            fut.set_result(
                obs if obs is not None else Observation(time=now, roles={}, source_ok=False, error=error)
            )

    async def close(self) -> None:
        """Cancel pending batches."""
        for task in list(self._flushers):
            task.cancel()
        for task in list(self._flushers):
            with _suppress_cancel():
                await task


class _suppress_cancel:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return exc_type is asyncio.CancelledError


# ---------------------------------------------------------------------------------------- per-resource memory


@dataclass
class ResourceMemory:
    """What the controller remembers about one InferenceAutoscaler between reconciles (in memory only).

    Attributes:
        generation: spec generation the policy state belongs to.
        seen_generation: spec generation of the last reconcile (a newer one wakes the worker early).
        state: the policy's state.
        applied: replicas per role that the controller last set (or adopted as baseline at start).
        paused_until: per role, Unix seconds until which a manual change is respected.
        failures: consecutive reconciles that ended in a temporary error (drives backoff).
        ignored_reported: spec generation whose ignored (unknown) fields were last reported in an Event.
        parsed: ``(generation, raw spec, spec, ignored fields)`` of the last valid spec, reused while the
            cached object's spec is unchanged (validation is the largest cost of a steady reconcile).
    """

    generation: int | None = None
    seen_generation: int | None = None
    state: Any = None
    applied: dict[Role, int] = field(default_factory=dict)
    paused_until: dict[Role, float] = field(default_factory=dict)
    failures: int = 0
    ignored_reported: int | None = None
    parsed: tuple[int | None, Any, InferenceAutoscalerSpec, tuple[str, ...]] | None = None


# ---------------------------------------------------------------------------------------------- conditions


CondSpec = tuple[str, str, str]  # (status, reason, message)


def build_conditions(
    old: Sequence[Mapping[str, Any]], wanted: Mapping[str, CondSpec], generation: int | None, now: float
) -> tuple[list[dict[str, Any]], list[tuple[str, CondSpec, bool]]]:
    """The new condition list, keeping ``lastTransitionTime`` when a condition's status did not change.

    Returns:
        (conditions, changes) where each change is ``(type, (status, reason, message), is_new)`` for a
        condition whose status or reason changed.
    """
    previous = {str(c.get("type")): c for c in old}
    out: list[dict[str, Any]] = []
    changes: list[tuple[str, CondSpec, bool]] = []
    for ctype in CONDITION_TYPES:
        if ctype not in wanted:
            continue
        status, reason, message = wanted[ctype]
        prev = previous.get(ctype)
        transition = rfc3339(now)
        if prev is not None and prev.get("status") == status:
            transition = str(prev.get("lastTransitionTime") or transition)
        if prev is None or prev.get("status") != status or prev.get("reason") != reason:
            changes.append((ctype, (status, reason, message), prev is None))
        cond: dict[str, Any] = {
            "type": ctype,
            "status": status,
            "lastTransitionTime": transition,
            "reason": reason,
            "message": message[:32768],
        }
        if generation is not None:
            cond["observedGeneration"] = generation
        out.append(cond)
    return out, changes


def _sig(value: float | None, digits: int = 4) -> float | None:
    """Round to ``digits`` significant digits so measurement noise alone does not cause status writes."""
    if value is None or not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _fmt_seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"


# ---------------------------------------------------------------------------------------------- reconciler


@dataclass
class _Outcome:
    """What one reconcile produced, assembled into status at the end."""

    conditions: dict[str, CondSpec] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def role_status(target: Any, current: int, desired: int, ready: int,
                mix: Mapping[str, int] | None) -> dict[str, Any]:
    """``status.roles.<role>``: replica counts of ``target`` and, when types were mixed, the plan's accelerators."""
    out: dict[str, Any] = {"current": current, "desired": desired, "ready": ready,
                           "starting": max(0, current - ready), "target": f"{target.kind}/{target.name}"}
    if mix:
        out["accelerator"], out["acceleratorPlan"] = next(iter(mix)), dict(mix)
    return out


class Reconciler:
    """Reconciles InferenceAutoscalers read from ``ias`` (an informer cache), one key at a time.

    Args:
        ias: cache of InferenceAutoscaler objects.
        fleet: workloads, pods, pools, scale.
        status: status subresource writer.
        events: Event recorder.
        metrics: batched metrics observation.
        policy: the decision policy (``core.decide`` in production).
        board: where decisions are published (external metrics API, exporter); optional.
        clock: Unix time.
        may_write: the leader-election gate, checked right before every write.
        count_error: called with an error kind (``metrics``, ``kube``, ``actuation``, ``spec``) for each
            problem a reconcile handles itself; what escapes it is counted by the worker.
    """

    def __init__(
        self,
        *,
        ias: ObjectCache,
        fleet: Fleet,
        status: StatusSink,
        events: EventSink,
        metrics: MetricsBatcher,
        policy: Policy[InferenceAutoscalerSpec, Any],
        board: DecisionBoard | None = None,
        clock: Clock | None = None,
        may_write: Callable[[], bool] = lambda: True,
        count_error: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.count_error = count_error
        self.ias = ias
        self.fleet = fleet
        self.status = status
        self.events = events
        self.metrics = metrics
        self.policy = policy
        self.board = board
        self.clock: Clock = clock or SystemClock()
        self.may_write = may_write
        self.memory: dict[str, ResourceMemory] = {}
        self.scale_actions = 0

    def forget(self, key: str) -> None:
        """Drop everything known about a deleted resource."""
        self.memory.pop(key, None)
        namespace, _, name = key.partition("/")
        self.status.forget(namespace, name)
        if self.board is not None:
            self.board.remove(namespace, name)

    async def reconcile_once(self, key: str) -> float | None:
        """Reconcile ``namespace/name`` once; seconds until it should run again, or None when it is gone.

        Raises:
            TemporaryError: when the API server failed in a way that may pass (the caller backs off).
        """
        namespace, _, name = key.partition("/")
        obj = self.ias.get(namespace, name)
        if obj is None:
            self.forget(key)
            return None
        mem = self.memory.setdefault(key, ResourceMemory())
        meta = obj.get("metadata") or {}
        generation = meta.get("generation")
        mem.seen_generation = generation
        now = self.clock.now()
        out = _Outcome()
        bound = log.bind(resource=key)

        # 1. validate
        raw = obj.get("spec")
        try:
            if mem.parsed is not None and mem.parsed[0] == generation and mem.parsed[1] == raw:
                spec, ignored = mem.parsed[2], mem.parsed[3]
            else:
                spec, ignored = parse_spec_from_cluster(raw, source=f"InferenceAutoscaler {key}")
                mem.parsed = (generation, raw, spec, ignored)
        except InvalidSpecError as err:
            self.count_error("spec")
            message = "; ".join(f"{path}: {msg}" for path, msg in err.problems)
            out.conditions["Ready"] = ("False", "InvalidSpec", message)
            await self._finish(obj, out, generation, now, None)
            bound.info("invalid spec", problems=len(err.problems))
            return 60.0  # a fixed spec arrives through the watch and wakes the worker at once
        interval = spec.control_interval_s
        if ignored and mem.ignored_reported != generation:
            # A newer CRD added fields this version does not know: keep managing, and say once per
            # generation what is ignored (not every tick: a steady resource costs no writes).
            mem.ignored_reported = generation
            await self.events.record(
                obj,
                type_="Warning",
                reason="UnknownFields",
                action="Validate",
                note=f"ignored by this controller version (upgrade it to use them): {', '.join(ignored)}",
                gate=self.may_write,
            )

        # 2. resolve targets
        try:
            pool = self.fleet.pool(namespace, spec.pool_ref.name, spec.pool_ref.group)
            targets: dict[Role, RoleTarget] = {}
            for role_name, role_spec in spec.roles.items():
                role = Role(role_name)
                ref = role_spec.scale_target_ref
                explicit = (ref.api_version, ref.kind, ref.name) if ref is not None else None
                targets[role] = await self.fleet.resolve(
                    namespace, role, pool=pool, role_label=spec.role_label, explicit=explicit
                )
            scales = {role: await self.fleet.get_scale(t) for role, t in targets.items()}
            pods = {role: await self.fleet.pods(t) for role, t in targets.items()}
        except (ResolutionError, NotFoundError) as err:
            self.count_error("kube")
            reason = err.reason if isinstance(err, ResolutionError) else "TargetNotFound"
            # A target that comes back is a new object: adopt its replicas as the baseline rather than
            # mistake the difference for a manual change (which would pause the role).
            mem.applied.clear()
            mem.paused_until.clear()
            out.conditions["TargetsResolved"] = ("False", reason, str(err))
            out.conditions["Ready"] = ("False", reason, str(err))
            await self._finish(obj, out, generation, now, spec)
            return interval
        out.conditions["TargetsResolved"] = (
            "True",
            "TargetsResolved",
            "; ".join(f"{r.value}: {t.kind}/{t.name}" for r, t in targets.items()),
        )

        # 3. observe
        query = PoolQuery(
            key=key,
            namespace=namespace,
            pool=spec.pool_ref.name,
            engine=spec.metrics.engine.value,
            pods_by_role={r: [p for p, _ in pods[r]] for r in targets},
            percentiles={"ttft": spec.slo.ttft.quantile, "itl": spec.slo.itl.quantile},
            window_s=spec.metrics.window_s,
            label_overrides=dict(spec.metrics.label_overrides),
            metric_overrides=dict(spec.metrics.metric_overrides),
            staleness_s=spec.metrics.staleness_s,
            unready=frozenset(p for r in targets for p, ready in pods[r] if not ready),
        )
        metrics_obs = await self.metrics.observe(spec, query, now)
        if not metrics_obs.source_ok:
            self.count_error("metrics")
        observation = _merge_observation(metrics_obs, scales, now)

        # 4. decide
        if mem.state is None or mem.generation != generation:
            mem.state = self.policy.initial_state(spec, now)
            mem.generation = generation
        decision, mem.state = self.policy.decide(spec, observation, mem.state, now)
        desired = {
            role: max(
                rs.min_replicas, min(rs.max_replicas, int(decision.desired.get(role, scales[role].replicas)))
            )
            for role, rs in ((Role(n), s) for n, s in spec.roles.items())
        }

        # 5. manual changes and actuation
        limited: list[str] = []
        failed: list[str] = []
        if spec.actuation is Actuation.DIRECT:
            applied = await self._actuate(
                obj, key, spec, targets, scales, desired, decision, mem, now, limited, failed
            )
        else:
            applied = {role: s.replicas for role, s in scales.items()}
            mem.applied.clear()

        # 6. status
        for role, target in targets.items():
            out.roles[role.value] = role_status(
                target, applied[role], desired[role], scales[role].ready, decision.accelerators.get(role))
        self._decision_conditions(spec, observation, decision, limited, out)
        if failed:
            out.conditions["Ready"] = ("False", "ScaleFailed", "; ".join(failed))
        self._decision_status(obj, spec, observation, decision, desired, now, out)
        await self._finish(obj, out, generation, now, spec)

        # 7. publish
        if self.board is not None:
            self.board.publish(
                DecisionRecord(
                    namespace=namespace,
                    name=name,
                    pool=spec.pool_ref.name,
                    labels=dict(meta.get("labels") or {}),
                    decision=dataclasses.replace(decision, desired=desired),
                    observation=observation,
                    slo_targets={"ttft": spec.slo.ttft.target_s, "itl": spec.slo.itl.target_s},
                    time=now,
                )
            )
        return interval

    # -- actuation

    async def _actuate(
        self,
        obj: Mapping[str, Any],
        key: str,
        spec: InferenceAutoscalerSpec,
        targets: Mapping[Role, RoleTarget],
        scales: Mapping[Role, ScaleState],
        desired: Mapping[Role, int],
        decision: Decision,
        mem: ResourceMemory,
        now: float,
        limited: list[str],
        failed: list[str],
    ) -> dict[Role, int]:
        applied = {role: s.replicas for role, s in scales.items()}
        for role, scale in scales.items():
            target = targets[role]
            if role not in mem.applied:
                mem.applied[role] = scale.replicas  # first sight (or restart): adopt the cluster's value
                continue
            if scale.replicas != mem.applied[role]:
                before, after = mem.applied[role], scale.replicas
                policy = spec.manual_change_policy
                if policy is ManualChangePolicy.PAUSE:
                    mem.paused_until[role] = now + spec.manual_pause_s
                    what = f"leaving {role.value} alone for {spec.manual_pause}"
                else:
                    what = f"restoring {desired[role]}"
                mem.applied[role] = after
                await self.events.record(
                    obj,
                    type_="Warning",
                    reason="ManualChange",
                    action="Observe",
                    note=f"{role.value} {target.kind}/{target.name}: replicas changed {before}→{after} outside "
                    f"the autoscaler; manualChangePolicy {policy.value}: {what}",
                    gate=self.may_write,
                )
                log.info(
                    "manual change",
                    resource=key,
                    role=role.value,
                    before=before,
                    after=after,
                    policy=policy.value,
                )
        for role in list(mem.paused_until):
            if now >= mem.paused_until[role]:
                del mem.paused_until[role]
        for role in mem.paused_until:
            limited.append(
                f"{role.value}: paused after a manual change until {rfc3339(mem.paused_until[role])}"
            )
        changes = [
            (role, desired[role])
            for role in scales
            if role not in mem.paused_until and desired[role] != scales[role].replicas
        ]
        # Scale up before scale down, so capacity never dips during a rebalance between roles.
        changes.sort(key=lambda c: c[1] <= scales[c[0]].replicas)
        primary = decision.primary_reason
        for role, replicas in changes:
            if not self.may_write():
                break
            target = targets[role]
            before = scales[role].replicas
            try:
                await self._set_replicas(target, replicas)
            except PermanentError as err:
                self.count_error("actuation")
                failed.append(f"{role.value} {target.kind}/{target.name}: {err}")
                await self.events.record(
                    obj,
                    type_="Warning",
                    reason="ScaleFailed",
                    action="Scale",
                    note=f"{role.value} {target.kind}/{target.name}: {before}→{replicas}: {err}",
                    gate=self.may_write,
                )
                continue
            self.scale_actions += 1
            mem.applied[role] = replicas
            applied[role] = replicas
            role_reason = next((r for r in decision.reasons if r.role is role), None) or primary
            code = (
                role_reason.code.value if role_reason else ("ScaleUp" if replicas > before else "ScaleDown")
            )
            message = role_reason.message if role_reason else ""
            await self.events.record(
                obj,
                type_="Normal",
                reason=code,
                action="Scale",
                note=f"{role.value} {target.kind}/{target.name}: {before}→{replicas}"
                + (f": {message}" if message else ""),
                gate=self.may_write,
            )
            log.info(
                "scaled",
                resource=key,
                role=role.value,
                target=f"{target.kind}/{target.name}",
                before=before,
                after=replicas,
                reason=code,
            )
        return applied

    async def _set_replicas(self, target: RoleTarget, replicas: int) -> None:
        # A merge patch without resourceVersion only conflicts transiently (admission, injected faults): the
        # patch is re-derived from the level, so sending it again is safe.
        async for attempt in retrying(stop=stop_after_attempt(5), wait=_CONFLICT_WAIT, retry_on=_conflict):
            with attempt:
                await self.fleet.set_replicas(target, replicas)

    # -- status assembly

    def _decision_conditions(
        self,
        spec: InferenceAutoscalerSpec,
        observation: Observation,
        decision: Decision,
        limited: list[str],
        out: _Outcome,
    ) -> None:
        if observation.trustworthy:
            out.conditions["MetricsAvailable"] = (
                "True",
                "MetricsAvailable",
                "all roles report fresh metrics",
            )
        else:
            reason = "MetricsUnavailable" if not observation.source_ok else "HoldOnBadData"
            notes = [observation.error] if observation.error else []
            for role, ro in observation.roles.items():
                if ro.flags:
                    flags = ",".join(sorted(f.value for f in ro.flags))
                    notes.append(f"{role.value}: {flags}" + (f" ({'; '.join(ro.notes)})" if ro.notes else ""))
            out.conditions["MetricsAvailable"] = ("False", reason, "; ".join(notes) or "metrics unavailable")
        ttft = _max_known(ro.ttft for ro in observation.roles.values())
        itl = _max_known(ro.itl for ro in observation.roles.values())
        if ttft is None or itl is None:
            out.conditions["SLOMet"] = ("Unknown", "NoData", "TTFT or ITL not observed")
        else:
            t_ok, i_ok = ttft <= spec.slo.ttft.target_s, itl <= spec.slo.itl.target_s
            msg = (
                f"TTFT p{spec.slo.ttft.percentile:g} {_fmt_seconds(ttft)} (target {spec.slo.ttft.target}), "
                f"ITL p{spec.slo.itl.percentile:g} {_fmt_seconds(itl)} (target {spec.slo.itl.target})"
            )
            out.conditions["SLOMet"] = (
                ("True", "SLOMet", msg) if t_ok and i_ok else ("False", "SLOViolated", msg)
            )
        lim = [r for r in decision.reasons if r.code in _LIMITING]
        if limited or lim:
            first = "ManualChangePause" if limited else lim[0].code.value
            out.conditions["ScalingLimited"] = (
                "True",
                first,
                "; ".join([*limited, *(r.message for r in lim)]),
            )
        else:
            out.conditions["ScalingLimited"] = (
                "False",
                "DesiredWithinRange",
                "the desired replicas are within bounds",
            )
        if spec.cost.budget_per_hour is not None:
            budget = next((r for r in decision.reasons if r.code is ReasonCode.BUDGET_LIMITED), None)
            out.conditions["BudgetLimited"] = (
                ("True", "BudgetLimited", budget.message)
                if budget
                else ("False", "WithinBudget", f"plan fits the budget of {spec.cost.budget_per_hour}/h")
            )
        mode = {Actuation.DIRECT: "Actuating", Actuation.HPA: "PublishingForHPA", Actuation.DRY_RUN: "DryRun"}
        out.conditions["Ready"] = ("True", mode[spec.actuation], f"actuation {spec.actuation.value}")

    def _decision_status(
        self,
        obj: Mapping[str, Any],
        spec: InferenceAutoscalerSpec,
        observation: Observation,
        decision: Decision,
        desired: Mapping[Role, int],
        now: float,
        out: _Outcome,
    ) -> None:
        old = obj.get("status") or {}
        roles = observation.roles.values()
        observed: dict[str, Any] = {
            "ttftSeconds": _sig(_max_known(r.ttft for r in roles)),
            "itlSeconds": _sig(_max_known(r.itl for r in roles)),
            "queueDepth": _sig(_sum_known(r.queue_depth for r in roles)),
            "kvCacheUtilization": _sig(_max_known(r.kv_utilization for r in roles)),
            "arrivalRate": _sig(_max_known(r.arrival_rate for r in roles)),
        }
        observed = {k: v for k, v in observed.items() if v is not None}
        prev_obs = dict(old.get("observed") or {})
        prev_time = prev_obs.pop("time", None)
        if observed:
            # The sample time moves only when a value does, so steady metrics cause no status writes.
            observed["time"] = prev_time if prev_obs == observed and prev_time else rfc3339(now)
            out.extra["observed"] = observed
        if decision.forecast is not None:
            out.extra["forecast"] = {
                "arrivalRate": _sig(decision.forecast.arrival_rate),
                "horizonSeconds": decision.forecast.horizon_s,
                "method": decision.forecast.method,
            }
        if decision.predicted_ttft is not None:
            out.extra["predictedTtftSeconds"] = _sig(decision.predicted_ttft)
        if decision.predicted_itl is not None:
            out.extra["predictedItlSeconds"] = _sig(decision.predicted_itl)
        cost = decision.cost_per_hour
        if cost is None:
            price = float(spec.cost.price_per_gpu_hour)
            cost = sum(desired[Role(n)] * s.gpus_per_replica * price for n, s in spec.roles.items())
        out.extra["costPerHour"] = f"{cost:.2f}"
        primary = decision.primary_reason
        reason = primary.code.value if primary else ReasonCode.STEADY.value
        message = primary.message if primary else ""
        prev_dec = old.get("lastDecision") or {}
        same = prev_dec.get("reason") == reason and prev_dec.get("message") == message
        out.extra["lastDecision"] = {
            "time": prev_dec.get("time") if same and prev_dec.get("time") else rfc3339(now),
            "reason": reason,
            "message": message[:4096],
        }
        summary: dict[str, str] = {}
        for role_name, rs in out.roles.items():
            col = "prefill" if role_name == "prefill" else "decode"
            summary[col] = f"{rs['current']}→{rs['desired']}"
        ttft = observed.get("ttftSeconds")
        summary["ttft"] = f"{_fmt_seconds(ttft) if ttft is not None else '-'}/{spec.slo.ttft.target}"
        queue = observed.get("queueDepth")
        summary["queue"] = (
            "-"
            if queue is None
            else (f"{queue:.0f}" if queue >= 10 or queue == int(queue) else f"{queue:.1f}")
        )
        kv = observed.get("kvCacheUtilization")
        summary["kvCache"] = "-" if kv is None else f"{kv * 100:.0f}%"
        out.extra["summary"] = summary

    async def _finish(
        self,
        obj: Mapping[str, Any],
        out: _Outcome,
        generation: int | None,
        now: float,
        spec: InferenceAutoscalerSpec | None,
    ) -> None:
        old = dict(obj.get("status") or {})
        conditions, changes = build_conditions(old.get("conditions") or [], out.conditions, generation, now)
        if spec is None:
            # Invalid spec: keep what was known about the roles, replace only the conditions.
            new = {k: v for k, v in old.items() if k not in ("conditions", "observedGeneration")}
        else:
            new = dict(out.extra)
            if out.roles:
                new["roles"] = out.roles
            elif old.get("roles"):
                new["roles"] = old["roles"]
            if old.get("lastScaleTime"):
                new["lastScaleTime"] = old["lastScaleTime"]
            prev_roles = old.get("roles") or {}
            if any(
                (prev_roles.get(r) or {}).get("current") not in (None, v["current"])
                for r, v in out.roles.items()
            ):
                new["lastScaleTime"] = rfc3339(now)
            if not out.extra:  # resolution failed: keep the last known figures
                for keep in (
                    "observed",
                    "forecast",
                    "costPerHour",
                    "lastDecision",
                    "summary",
                    "predictedTtftSeconds",
                    "predictedItlSeconds",
                ):
                    if keep in old:
                        new[keep] = old[keep]
        if generation is not None:
            new["observedGeneration"] = generation
        new["conditions"] = conditions
        meta = obj.get("metadata") or {}
        await self.status.write(
            str(meta.get("namespace")),
            str(meta.get("name")),
            old,
            new,
            current_rv=str(meta.get("resourceVersion") or ""),
            gate=self.may_write,
        )
        for ctype, (status, reason, message), is_new in changes:
            warning = (ctype, status) in _WARNING
            if is_new and not warning:
                continue  # a healthy first status is not news; problems are
            await self.events.record(
                obj,
                type_="Warning" if warning else "Normal",
                reason=reason,
                action="ConditionChanged",
                note=f"{ctype}={status}: {message}",
                gate=self.may_write,
            )


def _max_known(values: Any) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return max(known) if known else None


def _sum_known(values: Any) -> float | None:
    known = [v for v in values if v is not None and math.isfinite(v)]
    return sum(known) if known else None


def _merge_observation(metrics: Observation, scales: Mapping[Role, ScaleState], now: float) -> Observation:
    """The metrics source's observation with replica counts from the API server filled in per role."""
    roles: dict[Role, RoleObservation] = {}
    for role, scale in scales.items():
        ro = metrics.roles.get(role)
        if ro is None:
            ro = RoleObservation(
                replicas=scale.replicas,
                ready=scale.ready,
                starting=scale.starting,
                flags=frozenset({DataFlag.MISSING if metrics.source_ok else DataFlag.ERROR}),
                notes=(metrics.error or f"no metrics for role {role.value}",),
            )
        else:
            ro = dataclasses.replace(ro, replicas=scale.replicas, ready=scale.ready, starting=scale.starting)
        roles[role] = ro.sanitized()
    return Observation(
        time=metrics.time or now, roles=roles, source_ok=metrics.source_ok, error=metrics.error
    )
