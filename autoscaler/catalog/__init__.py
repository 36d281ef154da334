"""Bundled measured data: performance profiles, KV sizes, cold starts and GPU prices, with provenance.

Sits below the controller and the simulator (both read it) and above the pure core (which receives the
loaded :class:`autoscaler.core.profile.PerformanceProfile` objects and never reads files).
"""
