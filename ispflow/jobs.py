"""Background jobs on rq: the queue, the settings jobs run with, and the periodic jobs as plain data.

Jobs are plain functions that need no Flask app. They run with the settings of the worker
running them (``job_settings()``); ``ispflow worker`` takes those from its app — the host
panel's with ``--app`` — so a job sees what the panel sees. Settings never travel in a job's
payload (the encryption key stays out of Redis), and whatever a job writes that the panel must
find again (an export's file) is recorded in the database, not recomputed by the reader.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache

from redis import Redis
from rq import Queue

from .config import Settings

_running_with: ContextVar[Settings | None] = ContextVar("ispflow_job_settings", default=None)


def job_settings() -> Settings:
    """The settings of the worker running the current job."""
    settings = _running_with.get()
    if settings is None:
        raise RuntimeError("This ispflow job runs outside an ispflow worker: pass it its settings.")
    return settings


@contextmanager
def running_with(settings: Settings):
    """Run the jobs called inside with ``settings`` (what the worker does around each job)."""
    token = _running_with.set(settings)
    try:
        yield settings
    finally:
        _running_with.reset(token)


@lru_cache(maxsize=None)
def redis_connection(url: str) -> Redis:
    return Redis.from_url(url)


def queue(settings: Settings) -> Queue:
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
    PeriodicJob("chunk-order", 3600, "ispflow.retention.chunk_order:order_closed_chunks", timeout=3600),
    PeriodicJob("storage-statistics", 3600, "ispflow.retention.storage:sample_storage", timeout=900, retries=2),
    PeriodicJob("collector-liveness", 60, "ispflow.status:check_liveness", timeout=50),
    PeriodicJob("router-clocks", 300, "ispflow.routers.jobs:check_all_routers", timeout=280),
    PeriodicJob("rollups", 300, "ispflow.analytics.rollups:update_rollups", timeout=290, retries=1),
    PeriodicJob("security-findings", 600, "ispflow.security.findings:analyse_recent", timeout=3000),
    PeriodicJob("alerts", 60, "ispflow.alerts.service:evaluate_rules", timeout=55),
    PeriodicJob("audit-checkpoint", 3600, "ispflow.audit:checkpoint_job", timeout=300, retries=2),
]
