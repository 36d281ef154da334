"""Structured logging, configured once by the CLI (never at import time).

JSON lines when not attached to a terminal (in cluster), coloured console output on a TTY. Messages are
constant strings; context goes in bound key-value pairs (``log.info("scaled", role="decode", to=6)``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

__all__ = ["configure_logging", "get_logger"]


def configure_logging(*, json: bool | None = None, level: str = "info") -> None:
    """Configure structlog and the stdlib root logger.

    Args:
        json: JSON lines when True, console rendering when False; ``None`` picks JSON unless stderr is a TTY.
        level: minimum level name (debug, info, warning, error).
    """
    use_json = (not sys.stderr.isatty()) if json is None else json
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def get_logger(name: str, **context: Any) -> Any:
    """A bound structlog logger named ``name`` with ``context`` attached."""
    return structlog.get_logger(name).bind(**context)
