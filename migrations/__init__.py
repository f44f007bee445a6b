"""Alembic migrations of ispflow, shipped as package data."""
