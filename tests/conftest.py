"""Shared pytest configuration. Fixture modules are registered here, one line each."""

pytest_plugins: list[str] = [
    "tests.fixtures.controller",
    "tests.fixtures.cluster",
    "tests.fixtures.aggregation",
    "tests.fixtures.metrics_api",
    "tests.fixtures.prometheus",
    "tests.fixtures.sim_doubles",
    "tests.fixtures.reliability",
]
