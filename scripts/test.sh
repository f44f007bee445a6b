#!/usr/bin/env bash
# Runs the whole test suite against real PostgreSQL + TimescaleDB and Redis, installing them
# (and the third-party NetFlow exporters the collector tests use) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
exec .venv/bin/python -m pytest "$@"
