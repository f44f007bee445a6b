#!/usr/bin/env bash
# Prepares a checkout: services (PostgreSQL, TimescaleDB, Redis; with --test also the
# third-party NetFlow tools the tests use) and a virtual environment in .venv with ispflow
# installed in editable mode. Quick and silent when everything is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-services.sh "$@"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        bash -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null'
        "$PYTHON" -m venv .venv
    fi
fi
stamp=.venv/.ispflow-installed
wanted=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat $stamp 2>/dev/null)" != "$wanted" ]; then
    echo "ispflow setup: installing Python packages into .venv" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -U pip setuptools wheel
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,run]'
    echo "$wanted" > $stamp
fi

# The charting library the pages serve (uPlot), from the npm registry, pinned by package-lock.json.
lock_stamp=static/node_modules/.ispflow-lock
if [ "$(cat $lock_stamp 2>/dev/null)" != "$(sha256sum static/package-lock.json | cut -d' ' -f1)" ]; then
    echo "ispflow setup: installing the pages' JavaScript libraries (npm ci)" >&2
    (cd static && npm ci --no-audit --no-fund --silent >/dev/null)
    sha256sum static/package-lock.json | cut -d' ' -f1 > $lock_stamp
fi
