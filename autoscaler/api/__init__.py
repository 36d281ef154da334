"""Wire types: pydantic models of what crosses the process boundary (custom resources, external metrics)."""
