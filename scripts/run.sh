#!/usr/bin/env bash
# Runs ispflow for real on this machine: installs what is missing, upgrades the database,
# creates the first admin (printing its one-time password once), then serves the panel on
# http://127.0.0.1:5000 together with the collector and the job worker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

mkdir -p var
# The panel, collector and worker connect as the role ispflow (no update or delete of evidence);
# `ispflow db upgrade` runs as the owner, postgres, and creates that role.
export ISPFLOW_DATABASE_URL=${ISPFLOW_DATABASE_URL:-postgresql://ispflow@127.0.0.1:5432/ispflow}
export ISPFLOW_OWNER_DATABASE_URL=${ISPFLOW_OWNER_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/ispflow}
export ISPFLOW_REDIS_URL=${ISPFLOW_REDIS_URL:-redis://127.0.0.1:6379/0}
export ISPFLOW_SPOOL_DIR=${ISPFLOW_SPOOL_DIR:-$PWD/var/spool}
export ISPFLOW_STATE_DIR=${ISPFLOW_STATE_DIR:-$PWD/var/state}
export ISPFLOW_EXPORT_DIR=${ISPFLOW_EXPORT_DIR:-$PWD/var/exports}
if [ -z "${ISPFLOW_SECRET_KEY:-}" ]; then
    [ -s var/secret_key ] || (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_hex(32))' > var/secret_key)
    ISPFLOW_SECRET_KEY=$(cat var/secret_key)
    export ISPFLOW_SECRET_KEY
fi

.venv/bin/ispflow db upgrade
.venv/bin/ispflow users ensure-admin

pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# Background services of later features register here, one line each.
for service in scripts/services/*.sh; do
    [ -e "$service" ] || continue
    bash "$service" &
    pids+=($!)
done

echo "ispflow: panel on http://127.0.0.1:${ISPFLOW_PORT:-5000}/ (Ctrl-C stops everything)"
.venv/bin/gunicorn --bind "127.0.0.1:${ISPFLOW_PORT:-5000}" --workers 2 --access-logfile - wsgi:app &
pids+=($!)
wait -n "${pids[@]}"
