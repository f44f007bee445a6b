#!/usr/bin/env bash
# The NetFlow/IPFIX collector (UDP 2055 unless ISPFLOW_COLLECTOR_LISTEN or the module settings
# say otherwise). Started by scripts/run.sh with the ISPFLOW_* environment; SIGTERM stores what
# was received and stops it.
set -euo pipefail
cd "$(dirname "$0")/../.."
# --trust-first-exporter: the first sender is trusted (audited) while none is, so a first run
# stores flows without a further step; a production collector runs without it (README).
exec .venv/bin/ispflow collector --trust-first-exporter
