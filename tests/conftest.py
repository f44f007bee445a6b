"""Fixtures come from ispflow's own pytest plugin (ispflow/testing.py), which host panels reuse."""
