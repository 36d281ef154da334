"""One Event store served as both ``v1`` Events and ``events.k8s.io/v1`` Events, as the real API server does.

kube-apiserver keeps a single ``events`` resource (stored in the core internal shape) and converts on every read
and write (``pkg/apis/events/v1/conversion.go``). ``kubectl describe`` lists core ``v1`` Events with a field
selector on ``involvedObject``, so Events a controller records through ``events.k8s.io/v1`` must show up there.

Objects are stored in the core ``v1`` shape. The field mapping, events.k8s.io/v1 ↔ core v1:

- ``note`` ↔ ``message``
- ``regarding`` ↔ ``involvedObject``
- ``reportingController`` ↔ ``reportingComponent``
- ``deprecatedSource`` ↔ ``source``
- ``deprecatedFirstTimestamp`` ↔ ``firstTimestamp``, ``deprecatedLastTimestamp`` ↔ ``lastTimestamp``
- ``deprecatedCount`` ↔ ``count``

``reason``, ``type``, ``action``, ``related``, ``eventTime``, ``series`` and ``reportingInstance`` keep their
names (core ``v1`` has them too). Like the real conversion, nothing is derived: an Event written through
``events.k8s.io`` with only ``series`` has no core ``count``, and one without ``deprecatedSource`` has no core
``source`` — ``kubectl describe`` falls back to ``reportingComponent`` and ``series`` for those.
"""

from __future__ import annotations

from typing import Any

EVENTS_V1_GROUP = "events.k8s.io"

# events.k8s.io/v1 name → core v1 name
_RENAMES = (
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)

_NEW = frozenset(n for n, _ in _RENAMES)
_OLD = frozenset(o for _, o in _RENAMES)

# events.k8s.io field selector paths → the stored (core) paths they select on
FIELD_ALIASES = {
    "regarding.kind": "involvedObject.kind",
    "regarding.namespace": "involvedObject.namespace",
    "regarding.name": "involvedObject.name",
    "regarding.uid": "involvedObject.uid",
    "regarding.apiVersion": "involvedObject.apiVersion",
    "regarding.resourceVersion": "involvedObject.resourceVersion",
    "regarding.fieldPath": "involvedObject.fieldPath",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
}


def is_events_v1(group: str, plural: str) -> bool:
    """True for ``events.k8s.io`` Events (served by conversion from the core store)."""
    return group == EVENTS_V1_GROUP and plural == "events"


def to_core(obj: dict[str, Any]) -> dict[str, Any]:
    """An ``events.k8s.io/v1`` Event body in the stored (core) shape. ``obj`` is not modified."""
    out = {k: v for k, v in obj.items() if k not in _NEW}
    for new, old in _RENAMES:
        if new in obj:
            out[old] = obj[new]
    return out


def to_events_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """A stored (core) Event as ``events.k8s.io/v1`` shows it. ``obj`` is not modified."""
    out = {k: v for k, v in obj.items() if k not in _OLD}
    for new, old in _RENAMES:
        if old in obj:
            out[new] = obj[old]
    return out
