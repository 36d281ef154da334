"""The digital twin: trace loaders, a fleet model calibrated on measured GPU data, fakes of the ports over it,
a fast synchronous engine that calls the same ``decide`` as the controller, and the scorecard."""
