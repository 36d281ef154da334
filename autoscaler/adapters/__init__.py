"""I/O behind the ports: Prometheus, the Kubernetes API, the external metrics API server and the exporter.

Each adapter maps its library's exceptions to :mod:`autoscaler.errors` at the boundary.
"""
