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


# One line per periodic job; the worker reconciles this list with the scheduler at start.
PERIODIC_JOBS: list[PeriodicJob] = []
