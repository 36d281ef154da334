"""Wire types: the ``InferenceAutoscaler`` custom resource (spec and status), condition helpers, durations
and quantities, and CRD generation. Pure pydantic models; no I/O.
"""
