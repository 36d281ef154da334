"""Simple policies for the twin, and the registry that turns a policy string into a policy object.

- ``static:N`` — every role fixed at N replicas; ``static:prefill=4,decode=8`` per role.
- ``reactive`` — HPA's ratio rule on waiting requests per replica:
  ``desired = ceil(current × (queue per replica / target))``, unchanged while the ratio is within the
  tolerance; options ``reactive:target=4,tolerance=0.1,window=300`` (defaults: 4 waiting requests per
  replica, HPA's 10 % tolerance and 300 s scale-down stabilisation window: the highest recommendation of the
  window is applied). Holds (never scales down) when the role's data is untrusted or its queue is unknown.

Other modules add policies with :func:`register_policy`; the CLI and the benchmark only call
:func:`policy_from_string`. All policies here are generic over the spec (they do not read it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoscaler.core.types import Decision, Observation, Policy, Reason, ReasonCode, Role
from autoscaler.errors import InputError

__all__ = [
    "ReactivePolicy",
    "StaticPolicy",
    "parse_options",
    "policy_from_string",
    "policy_names",
    "register_policy",
]

PolicyFactory = Callable[[str], "Policy[Any, Any]"]
_REGISTRY: dict[str, tuple[PolicyFactory, str]] = {}


def register_policy(name: str, factory: PolicyFactory, usage: str) -> None:
    """Make ``name[:options]`` resolvable by :func:`policy_from_string`.

    Args:
        name: the part before the first ``:``, e.g. ``"hpa"``.
        factory: called with the text after ``:`` (empty when absent); raises :class:`InputError` on bad
            options.
        usage: one-line syntax help shown in errors, e.g. ``"hpa[:target=0.8]"``.
    """
    _REGISTRY[name] = (factory, usage)


def policy_names() -> list[str]:
    """Usage lines of the registered policies, sorted."""
    return sorted(usage for _, usage in _REGISTRY.values())


def policy_from_string(text: str) -> Policy[Any, Any]:
    """Parse ``name[:options]`` into a policy; :class:`InputError` naming ``--policy`` on bad input."""
    name, _, options = text.strip().partition(":")
    entry = _REGISTRY.get(name)
    if entry is None:
        raise InputError(
            f"unknown policy {name!r}; expected one of: {', '.join(policy_names())}", source="--policy"
        )
    return entry[0](options)


def parse_options(text: str, *, policy: str) -> dict[str, str]:
    """Parse ``k=v,k=v`` into a dict; :class:`InputError` on a malformed or repeated item."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise InputError(f"{policy}: expected key=value, got {item!r}", source="--policy")
        if key in out:
            raise InputError(f"{policy}: option {key!r} given twice", source="--policy")
        out[key] = value
    return out


def _positive_int(policy: str, key: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise InputError(f"{policy}: {key} must be a non-negative integer, got {value!r}", source="--policy")
    return n


def _positive_float(policy: str, key: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and x >= 0):
        raise InputError(f"{policy}: {key} must be a non-negative number, got {value!r}", source="--policy")
    return x


@dataclass(slots=True)
class StaticPolicy:
    """Fixed replicas: ``all_roles`` for every role, or ``per_role`` counts (roles not named keep theirs)."""

    all_roles: int | None = None
    per_role: Mapping[Role, int] = field(default_factory=dict)
    name: str = "static"

    def initial_state(self, spec: object, now: float) -> None:
        """Static policies keep no state."""
        return None

    def decide(
        self, spec: object, observation: Observation, state: None, now: float
    ) -> tuple[Decision, None]:
        """Return the fixed counts for every role present in the observation."""
        desired: dict[Role, int] = {}
        for role, obs in observation.roles.items():
            if role in self.per_role:
                desired[role] = self.per_role[role]
            elif self.all_roles is not None:
                desired[role] = self.all_roles
            else:
                desired[role] = obs.replicas
        return Decision(desired=desired, reasons=(Reason(ReasonCode.STEADY, "static policy"),)), None


def _static_factory(options: str) -> StaticPolicy:
    if not options:
        raise InputError("static: expected static:N or static:prefill=N,decode=M", source="--policy")
    if "=" not in options:
        return StaticPolicy(all_roles=_positive_int("static", "N", options), name=f"static:{options}")
    per_role: dict[Role, int] = {}
    for key, value in parse_options(options, policy="static").items():
        try:
            role = Role(key)
        except ValueError:
            raise InputError(
                f"static: unknown role {key!r}; expected prefill, decode or both", source="--policy"
            ) from None
        per_role[role] = _positive_int("static", key, value)
    return StaticPolicy(per_role=per_role, name=f"static:{options}")


@dataclass(slots=True)
class ReactivePolicy:
    """HPA-style ratio rule on ``num_requests_waiting`` per replica.

    Attributes:
        target: waiting requests per ready replica the rule aims for.
        tolerance: relative band around 1.0 inside which the ratio leaves the count unchanged (HPA's 10 %).
        min_replicas: floor of every decision (1 keeps a replica to observe load with).
        window_s: scale-down stabilisation window, seconds (HPA's default 300 s).

    The state is the recent recommendations, ``((time, role, replicas), ...)`` within the window.
    """

    target: float = 4.0
    tolerance: float = 0.1
    min_replicas: int = 1
    window_s: float = 300.0
    name: str = "reactive"

    def initial_state(self, spec: object, now: float) -> tuple[tuple[float, Role, int], ...]:
        """No recommendations yet."""
        return ()

    def decide(
        self,
        spec: object,
        observation: Observation,
        state: tuple[tuple[float, Role, int], ...],
        now: float,
    ) -> tuple[Decision, tuple[tuple[float, Role, int], ...]]:
        """One ratio step per role, then HPA's scale-down stabilisation."""
        history = [h for h in state if h[0] > now - self.window_s]
        desired: dict[Role, int] = {}
        reasons: list[Reason] = []
        for role, obs in observation.roles.items():
            current = obs.replicas
            if not observation.source_ok or not obs.trustworthy or obs.queue_depth is None:
                desired[role] = current
                reasons.append(Reason(ReasonCode.HOLD_ON_BAD_DATA, "queue depth unknown; holding", role))
                continue
            base = max(obs.ready, 1)
            per_replica = obs.queue_depth / base
            # An empty queue with spare replicas: scale in by the HPA ratio towards the minimum.
            ratio = per_replica / self.target if self.target > 0 else math.inf
            if abs(ratio - 1.0) <= self.tolerance:
                desired[role] = current
                reasons.append(Reason(ReasonCode.WITHIN_TOLERANCE, f"queue/replica {per_replica:.2f}", role))
                continue
            want = math.ceil(base * ratio) if math.isfinite(ratio) else current + 1
            want = max(self.min_replicas, want)
            history.append((now, role, want))
            if want < current:
                # HPA stabilisation: never go below the highest recommendation of the window
                want = max(h[2] for h in history if h[1] is role)
            code = ReasonCode.LOAD_SCALE_UP if want > current else (
                ReasonCode.SCALE_DOWN if want < current else ReasonCode.STEADY
            )
            desired[role] = want
            reasons.append(Reason(code, f"queue/replica {per_replica:.2f} vs target {self.target:g}", role))
        return Decision(desired=desired, reasons=tuple(reasons)), tuple(history)


def _reactive_factory(options: str) -> ReactivePolicy:
    opts = parse_options(options, policy="reactive")
    unknown = set(opts) - {"target", "tolerance", "min", "window"}
    if unknown:
        raise InputError(
            f"reactive: unknown option(s) {sorted(unknown)}; expected target, tolerance, min, window",
            source="--policy",
        )
    target = _positive_float("reactive", "target", opts.get("target", "4"))
    if target == 0:
        raise InputError("reactive: target must be > 0", source="--policy")
    return ReactivePolicy(
        target=target,
        tolerance=_positive_float("reactive", "tolerance", opts.get("tolerance", "0.1")),
        min_replicas=_positive_int("reactive", "min", opts.get("min", "1")),
        window_s=_positive_float("reactive", "window", opts.get("window", "300")),
        name="reactive" + (f":{options}" if options else ""),
    )


register_policy("static", _static_factory, "static:N | static:prefill=N,decode=M")
register_policy("reactive", _reactive_factory, "reactive[:target=4,tolerance=0.1,min=1,window=300]")

# the core's policies register themselves on import (sim may import core; core never imports sim)
from autoscaler.sim import core_policies as _core_policies  # noqa: E402,F401
