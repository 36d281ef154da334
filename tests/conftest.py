"""Shared pytest configuration. Fixture modules live in tests/fixtures/ and are registered here."""

pytest_plugins: list[str] = [
    # one line per fixture module, e.g. "tests.fixtures.prometheus",
    "tests.fixtures.sim_doubles",
]
