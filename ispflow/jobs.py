"""Background jobs on rq: the queue, and the periodic jobs declared as plain data.

Jobs are plain functions that need no Flask app: they read their settings from the
``ISPFLOW_*`` environment (``job_settings()``), the same as the worker that runs them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from redis import Redis
from rq import Queue

from .config import Settings


def job_settings() -> Settings:
    """Settings of the process running a job (the rq worker, the CLI, or a test)."""
    return Settings.from_env()


@lru_cache(maxsize=None)
def redis_connection(url: str) -> Redis:
    return Redis.from_url(url)


def queue(settings: Settings | None = None) -> Queue:
    settings = settings or job_settings()
    return Queue(settings.QUEUE_NAME, connection=redis_connection(settings.REDIS_URL))


@dataclass(frozen=True)
class PeriodicJob:
    """A job the scheduler enqueues every ``interval`` seconds."""

    name: str
    interval: int
    function: str  # "module:function", imported by the worker
    timeout: int = 600
    retries: int = 0  # rq retries after a failure; only for jobs that are safe to run twice


# One line per periodic job; the worker reconciles this list with the scheduler at start.
PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob("retention", 24 * 3600, "ispflow.retention.jobs:run_retention", timeout=3600, retries=3),
    PeriodicJob("storage-statistics", 3600, "ispflow.retention.storage:sample_storage", timeout=900, retries=2),
    PeriodicJob("collector-liveness", 60, "ispflow.status:check_liveness", timeout=50),
    PeriodicJob("router-clocks", 300, "ispflow.routers.jobs:check_all_routers", timeout=280),
    PeriodicJob("security-findings", 600, "ispflow.security.findings:analyse_recent", timeout=3000),
    PeriodicJob("alerts", 60, "ispflow.alerts.service:evaluate_rules", timeout=55),
    PeriodicJob("audit-checkpoint", 3600, "ispflow.audit:checkpoint_job", timeout=300, retries=2),
]
