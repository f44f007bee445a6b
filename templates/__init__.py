"""Jinja templates of ispflow, shipped as package data (the package is this folder)."""
