"""inference-autoscaler: keeps LLM inference fleets inside their latency SLOs at the lowest GPU cost.

Layers (imports point downwards only; enforced by import-linter in ``make lint``)::

    cli ─► controller ─► adapters ─► ports ─► core ─► api
     └──► sim ──────────────────────────────► core

See docs/architecture.md.
"""

__version__ = "0.1.0"
