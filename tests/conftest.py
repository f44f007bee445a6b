"""Fixtures come from ispflow's own pytest plugin (ispflow/testing.py), which host panels reuse,
and from the router fakes (tests/fakes/fixtures.py)."""
pytest_plugins = ["tests.fakes.fixtures"]
