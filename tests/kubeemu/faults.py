"""Fault injection for the emulator: the same rules the real control plane's fault proxy applies."""

from localcluster.faults import WRITE_METHODS, Faults

__all__ = ["WRITE_METHODS", "Faults"]
