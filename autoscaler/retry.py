"""The one retry and backoff policy: tenacity's, configured per call site.

Call sites that retry one call (a Kubernetes request, a Prometheus query, a 409 on a patch, reading a
ConfigMap at start-up) use :func:`retrying` with their own stop, wait and predicate. Supervision loops that
never give up and start again from the base delay after progress (a watch, a resource's reconcile loop) use
:class:`Backoff`, which draws its delays from the same tenacity wait strategy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

__all__ = ["Backoff", "RetryCallState", "equal_jitter", "full_jitter", "retrying", "stop_after_attempt"]


def equal_jitter(base: float, cap: float) -> wait_base:
    """Equal jitter: ``uniform(c/2, c)`` seconds before the n-th retry, ``c = min(cap, base × 2**(n−1))``."""
    return wait_exponential(multiplier=base / 2, max=cap / 2) + wait_random_exponential(
        multiplier=base / 2, max=cap / 2
    )


class full_jitter(wait_exponential):
    """Full jitter: ``uniform(0, c)`` seconds, ``c = min(cap, base × 2**(n−1))``, drawn from ``rng`` (seedable,
    unlike tenacity's ``wait_random_exponential``)."""

    def __init__(self, base: float, cap: float = math.inf, rng: random.Random | None = None) -> None:
        super().__init__(multiplier=base, max=cap)
        self.rng = rng or random.Random()

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.rng.uniform(0, super().__call__(retry_state))


def retrying(
    *,
    stop: stop_base,
    wait: wait_base | Callable[[RetryCallState], float],
    retry_on: Callable[[BaseException], bool],
    sleep: Callable[[float], Any] | None = None,
) -> AsyncRetrying:
    """An async retry loop (``async for attempt in retrying(...): with attempt: ...``) that re-raises the last
    error once ``stop`` says so; ``retry_on`` tells which exceptions are worth another attempt."""
    if sleep is None:
        return AsyncRetrying(stop=stop, wait=wait, retry=retry_if_exception(retry_on), reraise=True)
    return AsyncRetrying(stop=stop, wait=wait, retry=retry_if_exception(retry_on), reraise=True, sleep=sleep)


@dataclass
class Backoff:
    """Delays for a loop that retries forever and resets on progress: :func:`equal_jitter` (``base``, ``cap``
    seconds), one more attempt per :meth:`next_delay`."""

    base: float = 0.2
    cap: float = 30.0
    attempt: int = 0
    _wait: wait_base = field(init=False, repr=False)
    _state: RetryCallState = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._wait = equal_jitter(self.base, self.cap)
        # tenacity's wait strategies read only the attempt number of the call state
        self._state = RetryCallState(AsyncRetrying(), None, (), {})

    def next_delay(self) -> float:
        """The next delay, seconds; grows until :meth:`reset`."""
        self.attempt += 1
        self._state.attempt_number = self.attempt
        return float(self._wait(self._state))

    def reset(self) -> None:
        """Start again from ``base`` after a success."""
        self.attempt = 0
