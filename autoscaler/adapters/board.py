"""The in-memory :class:`~autoscaler.ports.DecisionBoard`: latest decision per InferenceAutoscaler.

The controller publishes from its event loop; the external metrics API and the exporter read from the same
loop (or, for the exporter, at scrape time). Every operation replaces or copies whole immutable records under
a lock, so a reader never sees a half-updated board even if a reader runs in another thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence

from autoscaler.ports import DecisionRecord

__all__ = ["MemoryDecisionBoard"]


class MemoryDecisionBoard:
    """Records keyed by ``(namespace, name)``, plus a running count of published decisions by reason.

    ``version`` increases on every change, so readers can cheaply tell whether anything moved.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], DecisionRecord] = {}
        self._reason_counts: Counter[str] = Counter()
        self.version = 0

    def publish(self, record: DecisionRecord) -> None:
        """Replace the record for ``(record.namespace, record.name)`` and count its primary reason."""
        primary = record.decision.primary_reason
        with self._lock:
            self._records[(record.namespace, record.name)] = record
            self._reason_counts[primary.code.value if primary else "None"] += 1
            self.version += 1

    def remove(self, namespace: str, name: str) -> None:
        """Forget an InferenceAutoscaler that was deleted (no error if it was not there)."""
        with self._lock:
            if self._records.pop((namespace, name), None) is not None:
                self.version += 1

    def records(self, namespace: str | None = None) -> Sequence[DecisionRecord]:
        """Current records, sorted by ``(namespace, name)``, optionally of one namespace."""
        with self._lock:
            items = sorted(self._records.items())
        return [r for (ns, _), r in items if namespace is None or ns == namespace]

    def get(self, namespace: str, name: str) -> DecisionRecord | None:
        """The record of one InferenceAutoscaler, if any."""
        with self._lock:
            return self._records.get((namespace, name))

    def reason_counts(self) -> Mapping[str, int]:
        """How many decisions were published per primary reason code since start (monotonic)."""
        with self._lock:
            return dict(self._reason_counts)
