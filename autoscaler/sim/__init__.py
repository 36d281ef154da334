"""The digital twin: trace loaders, a calibrated fleet model, Prometheus-like signals and a fast engine."""
