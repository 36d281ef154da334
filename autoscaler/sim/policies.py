"""The one policy registry: turns ``name[:options]`` into a policy, for ``simulate --policy`` and the scorecard.

- ``static:N`` — every role fixed at N replicas; ``static:prefill=N,decode=M`` per role
  (:class:`~autoscaler.core.baselines.StaticPolicy`).
- ``reactive[:target=T]`` — deprecated alias of ``hpa-queue[:T]`` (the HPA on waiting requests per pod, run on
  the twin's own replica bounds instead of a bound spec); it was a simplified re-statement of that HPA.

The core's policies (``slo``, the baselines, ``oracle``) are registered by :mod:`autoscaler.sim.core_policies`.
Other modules add policies with :func:`register_policy`; the CLI and the benchmark only call
:func:`policy_from_string`. A deprecated alias (:func:`register_alias`) resolves like its target but is not
listed in :func:`policy_names`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from autoscaler.core.baselines import HPAPolicy, StaticPolicy
from autoscaler.core.types import Policy, Role
from autoscaler.errors import InputError

__all__ = [
    "StaticPolicy",
    "parse_options",
    "policy_from_string",
    "policy_names",
    "register_alias",
    "register_policy",
]

PolicyFactory = Callable[[str], "Policy[Any, Any]"]
_REGISTRY: dict[str, tuple[PolicyFactory, str]] = {}
_ALIASES: dict[str, PolicyFactory] = {}


def register_policy(name: str, factory: PolicyFactory, usage: str) -> None:
    """Make ``name[:options]`` resolvable by :func:`policy_from_string`.

    Args:
        name: the part before the first ``:``, e.g. ``"hpa"``.
        factory: called with the text after ``:`` (empty when absent); raises :class:`InputError` on bad
            options.
        usage: one-line syntax help shown in errors, e.g. ``"hpa[:target=0.8]"``.
    """
    _REGISTRY[name] = (factory, usage)


def register_alias(old: str, factory: PolicyFactory) -> None:
    """Keep a deprecated name resolvable (a name users already had in scripts); it is not listed."""
    _ALIASES[old] = factory


def policy_names() -> list[str]:
    """Usage lines of the registered policies, sorted."""
    return sorted(usage for _, usage in _REGISTRY.values())


def policy_from_string(text: str) -> Policy[Any, Any]:
    """Parse ``name[:options]`` into a policy; :class:`InputError` naming ``--policy`` on bad input."""
    name, _, options = text.strip().partition(":")
    entry = _REGISTRY.get(name)
    if entry is not None:
        return entry[0](options)
    alias = _ALIASES.get(name)
    if alias is None:
        raise InputError(
            f"unknown policy {name!r}; expected one of: {', '.join(policy_names())}", source="--policy"
        )
    return alias(options)


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


def _reactive_factory(options: str) -> Policy[Any, Any]:
    opts = parse_options(options, policy="reactive")
    unknown = set(opts) - {"target"}
    if unknown:
        raise InputError(
            f"reactive: unknown option(s) {sorted(unknown)}; reactive is hpa-queue now and takes only target"
            " (tolerance, stabilisation window and rate limits are the HPA's defaults)",
            source="--policy",
        )
    target = _positive_float("reactive", "target", opts.get("target", "5"))
    if target == 0:
        raise InputError("reactive: target must be > 0", source="--policy")
    policy = HPAPolicy("queue", target)
    policy.name = "reactive" + (f":{options}" if options else "")
    return policy


register_policy("static", _static_factory, "static:N | static:prefill=N,decode=M")
register_alias("reactive", _reactive_factory)

# the core's policies register themselves on import (sim may import core; core never imports sim)
from autoscaler.sim import core_policies as _core_policies  # noqa: E402,F401
