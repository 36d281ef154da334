"""The project's exception tree, drawn once here.

::

    AutoscalerError                 base of everything this package raises on purpose
    ├── InputError                  bad user input: a file, a flag or a custom resource; names where and what
    │   └── InvalidSpecError        an InferenceAutoscaler spec that fails validation
    ├── TemporaryError(delay)       an external system failed in a way that may pass; retry after ``delay`` s
    │   ├── ConflictError           409: the object changed since it was read; re-read and retry
    │   └── GoneError               410: the resourceVersion is too old to resume from; re-list
    └── PermanentError              an external system refused in a way that will not pass by retrying
        ├── NotFoundError           404: the named object (or its API) does not exist
        └── ResolutionError(reason) a role's target is not exactly one workload

Adapters map library exceptions (aiohttp, kubernetes_asyncio, prometheus-api-client) to these at the
boundary, so the controller and the CLI only ever handle this tree. The CLI turns any ``AutoscalerError``
into a one-line message and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

__all__ = [
    "AutoscalerError",
    "ConflictError",
    "GoneError",
    "InputError",
    "InvalidSpecError",
    "NotFoundError",
    "PermanentError",
    "ResolutionError",
    "TemporaryError",
]


class AutoscalerError(Exception):
    """Base class of every error the package raises on purpose."""


class InputError(AutoscalerError):
    """Bad input from a user: names the source (file, line, field) and what was expected.

    Attributes:
        source: file path, flag or resource the input came from (may be empty).
        line: 1-based line number within ``source`` when it is a file, else ``None``.
        detail: what was wrong and what was expected.
    """

    def __init__(self, detail: str, *, source: str = "", line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.detail = detail
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {detail}" if where else detail)


class InvalidSpecError(InputError):
    """An InferenceAutoscaler spec failed validation.

    Attributes:
        problems: one ``(field path, message)`` pair per problem, e.g. ``("spec.roles.prefill.maxReplicas",
            "must be >= minReplicas (4)")``.
    """

    def __init__(self, problems: list[tuple[str, str]], *, source: str = "") -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems), source=source)


class TemporaryError(AutoscalerError):
    """A failure that may pass: retry after ``delay`` seconds (with jitter added by the caller)."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        self.delay = delay
        super().__init__(message)


class PermanentError(AutoscalerError):
    """A failure that retrying will not fix (403, 404 on a required object, a malformed reply)."""


class ConflictError(TemporaryError):
    """409: the object changed since it was read (stale resourceVersion). Re-read and retry."""


class NotFoundError(PermanentError):
    """404: the named object (or its API) does not exist."""


class GoneError(TemporaryError):
    """410: the resourceVersion is too old to resume from; re-list."""


class ResolutionError(PermanentError):
    """A role's target could not be resolved to exactly one workload.

    Attributes:
        reason: CamelCase condition reason: PoolNotFound, TargetNotFound, AmbiguousTarget, UnsupportedTarget.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
