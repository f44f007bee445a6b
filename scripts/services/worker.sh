#!/usr/bin/env bash
# The job worker and the scheduler of periodic jobs (retention, storage statistics, liveness).
# Started by scripts/run.sh with the ISPFLOW_* environment; SIGTERM stops it after the current job.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/ispflow worker
