"""Leader election on a ``coordination.k8s.io/v1`` Lease, with the protocol implemented directly.

Why not kubernetes_asyncio's ``LeaderElection``: it cancels the leader's work and returns on loss without
re-acquiring, and it gives no synchronous "may I write now?" answer. Here:

- a standby takes over when the Lease's record has not changed for ``lease_duration`` seconds of its own
  monotonic time (client-go's rule, immune to clock skew), when the holder's ``renewTime`` is more than
  ``lease_duration`` old (so a standby that just started need not wait a whole extra duration), or when the
  holder released it;
- every acquire and renew is a PUT with the read resourceVersion, so two candidates never both win (409);
- :meth:`LeaderElector.is_leader` is True only until ``renew_deadline`` after the start of the last
  successful renewal — strictly before any standby may take over — so the controller checks it right
  before each write and never writes after losing the Lease;
- on shutdown the Lease is released (empty holder) so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from autoscaler.api.times import parse_rfc3339, rfc3339_micro
from autoscaler.errors import ConflictError, PermanentError, TemporaryError
from autoscaler.ports import LeaseRecord, LeaseStore

__all__ = ["LeaderElector"]

log = structlog.get_logger("autoscaler.controller.election")


class LeaderElector:
    """Acquires and renews one Lease; tells the controller when it leads.

    Args:
        lock: the Lease.
        identity: this candidate's holder identity.
        lease_duration_s: seconds without renewal after which a standby takes over.
        renew_deadline_s: seconds the leader keeps leading without a successful renewal (< lease duration).
        retry_period_s: seconds between attempts.
        on_started / on_stopped: called when leadership is gained / lost (synchronously, from the elector).
        monotonic / wall: clocks (injectable for tests).
    """

    def __init__(
        self,
        lock: LeaseStore,
        identity: str,
        *,
        lease_duration_s: float = 15.0,
        renew_deadline_s: float = 10.0,
        retry_period_s: float = 2.0,
        on_started: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.lock = lock
        self.identity = identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.monotonic = monotonic
        self.wall = wall
        self.transitions = 0
        self._valid_until = 0.0
        self._leading = False
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0

    def is_leader(self) -> bool:
        """True while this candidate holds the Lease and its last renewal is within the renew deadline."""
        return self._leading and self.monotonic() < self._valid_until

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this candidate holds the Lease afterwards."""
        started = self.monotonic()
        now_wall = self.wall()
        record = await self.lock.get()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration_s)),
            "renewTime": rfc3339_micro(now_wall),
        }
        if record is None:
            spec.update(acquireTime=rfc3339_micro(now_wall), leaseTransitions=0)
            await self.lock.create(spec)
            self._granted(started)
            return True
        if record != self._observed:
            self._observed, self._observed_at = record, started
        held_by_other = bool(record.holder) and record.holder != self.identity
        if held_by_other and not self._expired(record, started, now_wall):
            return False
        if record.holder == self.identity:
            spec.update(
                acquireTime=record.acquire_time or rfc3339_micro(now_wall),
                leaseTransitions=record.transitions,
            )
        else:
            spec.update(acquireTime=rfc3339_micro(now_wall), leaseTransitions=record.transitions + 1)
        updated = await self.lock.update(spec, record.resource_version)
        self._observed, self._observed_at = updated, started
        self._granted(started)
        return True

    def _expired(self, record: LeaseRecord, mono: float, wall: float) -> bool:
        duration = max(record.duration_s, 1)
        if mono >= self._observed_at + duration:
            return True  # unchanged for a whole lease duration of our own clock
        try:
            renewed = parse_rfc3339(record.renew_time)
        except ValueError:
            return False
        return wall >= renewed + duration  # the holder's own renew time is older than the lease

    def _granted(self, started: float) -> None:
        self._valid_until = started + self.renew_deadline_s
        if not self._leading:
            self._leading = True
            self.transitions += 1
            log.info("leadership acquired", identity=self.identity)
            if self.on_started:
                self.on_started()

    def _lost(self, why: str) -> None:
        if self._leading:
            self._leading = False
            self._valid_until = 0.0
            log.warning("leadership lost", identity=self.identity, why=why)
            if self.on_stopped:
                self.on_stopped()

    async def run(self) -> None:
        """Acquire, renew and re-acquire forever (until cancelled)."""
        while True:
            try:
                ok = await asyncio.wait_for(self.try_acquire_or_renew(), timeout=self.retry_period_s * 2)
                if not ok:
                    self._lost("held by another candidate")
            except ConflictError:
                self._lost("lost a concurrent update of the Lease")
            except (TemporaryError, PermanentError, TimeoutError) as err:
                # Every failed attempt is logged: a standby that cannot read or create the Lease (403) would
                # otherwise wait forever without a word.
                log.warning("lease attempt failed", identity=self.identity, error=f"{type(err).__name__}: {err}")
                if self._leading and self.monotonic() >= self._valid_until:
                    self._lost(f"could not renew within {self.renew_deadline_s}s: {err}")
            if self._leading:
                # Wake exactly at the deadline if renewals keep failing, so is_leader's owner is told promptly.
                delay = min(self.retry_period_s, max(0.0, self._valid_until - self.monotonic()))
            else:
                delay = self.retry_period_s
            await asyncio.sleep(delay)
            if self._leading and self.monotonic() >= self._valid_until:
                self._lost(f"no successful renewal within {self.renew_deadline_s}s")

    async def release(self) -> None:
        """Give the Lease up (empty holder, 1 s duration) if held, so a standby takes over at once."""
        was_leading = self._leading
        self._lost("released")
        if not was_leading:
            return
        try:
            record = await self.lock.get()
            if record is not None and record.holder == self.identity:
                await self.lock.update(
                    {
                        "holderIdentity": "",
                        "leaseDurationSeconds": 1,
                        "acquireTime": record.acquire_time,
                        "renewTime": rfc3339_micro(self.wall()),
                        "leaseTransitions": record.transitions,
                    },
                    record.resource_version,
                )
        except (TemporaryError, PermanentError) as err:
            log.warning("could not release the lease", error=str(err))
