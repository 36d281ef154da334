"""Process settings of ``inference-autoscaler run`` (flags and environment, via pydantic-settings): which
namespaces or label selector to watch, leader election, health and metrics ports, log format. Each setting is
documented where it is defined, with its unit and why its default."""
