"""Router jobs as rows: create one, log its lines as they come, run it to its end.

A job's log and progress are written on their own connection line by line as the driver
reports, so the panel can show them while the job runs. What each kind of job does with the
router is in ``actions``.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..config import ConfigError, Settings
from ..database import engine_for
from .actions import KINDS
from .base import RouterError
from .inventory import audit_change
from .models import Router, RouterJob
from .status import utcnow

ACTIONS = tuple(KINDS)
# A queued or running job older than this is taken as abandoned (its worker died).
STALE_JOB = timedelta(minutes=15)


class JobRefused(ValueError):
    """The job cannot be started now (another one runs on the same router)."""


def create_job(session: Session, router: Router, action: str, requested_by: str | None = None) -> RouterJob:
    """A queued job row; refuses while another job of this router is queued or running."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    busy = session.execute(
        sa.select(RouterJob).where(RouterJob.router_id == router.id, RouterJob.state.in_(("queued", "running")),
                                   RouterJob.created_at > utcnow() - STALE_JOB)
    ).scalars().first()
    if busy is not None:
        raise JobRefused(f"A {busy.action} job for {router.name} is {busy.state} already; wait for it to finish.")
    job = RouterJob(router_id=router.id, action=action, requested_by=requested_by)
    session.add(job)
    session.flush()
    audit_change(session, router, f"router.{action}", requested_by, None, job_id=job.id)
    return job


class JobLog:
    """Appends lines (and progress) to a job's row on its own connection, committed at once."""

    def __init__(self, database_url: str, job_id: int, echo: Callable[[str], None] | None = None):
        self.engine = engine_for(database_url)
        self.job_id = job_id
        self.echo = echo

    def line(self, text: str, progress: int | None = None) -> None:
        stamp = utcnow().strftime("%H:%M:%S")
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("update ispflow.router_jobs set log = log || :line, "
                        "progress = greatest(progress, coalesce(:progress, progress)) where id = :id"),
                {"line": f"{stamp} {text}\n", "progress": progress, "id": self.job_id},
            )
        if self.echo:
            self.echo(text)

    __call__ = line


def run_job(database_url: str, settings: Settings, job_id: int, echo: Callable[[str], None] | None = None) -> RouterJob:
    """Run a queued job to its end; the row says how it went (state, message, log)."""
    with Session(engine_for(database_url), expire_on_commit=False) as session:
        job = session.get(RouterJob, job_id)
        if job is None:
            raise LookupError(f"router job {job_id} does not exist")
        router = session.get(Router, job.router_id)
        job.state, job.started_at = "running", utcnow()
        session.commit()
        log = JobLog(database_url, job_id, echo)
        try:
            message = KINDS[job.action](session, settings, router, log, job.requested_by)
            job.state = "finished"
        except (RouterError, ConfigError) as exc:
            message = str(exc)
            _log_failure(log, exc)
            router.last_error = message
            job.state = "failed"
        except Exception as exc:  # noqa: BLE001  (a bug must still end the job, not leave it running)
            session.rollback()
            message = f"The job failed unexpectedly ({type(exc).__name__}); see the worker's log."
            log(message)
            job = session.get(RouterJob, job_id)
            job.state = "failed"
            _finish(session, job, message)
            raise
        _finish(session, job, message)
        session.refresh(job)
        return job


def _finish(session: Session, job: RouterJob, message: str) -> None:
    job.message, job.finished_at, job.progress = message, utcnow(), 100
    session.commit()


def _log_failure(log: JobLog, exc: Exception) -> None:
    log(f"FAILED: {exc}")
    if isinstance(exc, RouterError):
        if exc.rolled_back:
            log("Rolled back: " + "; ".join(line.strip() for line in exc.rolled_back if line != "exit"))
        if exc.applied:
            log("Still applied: " + "; ".join(line.strip() for line in exc.applied if line != "exit"))
        if exc.not_applied:
            log("Not applied: " + "; ".join(line.strip() for line in exc.not_applied if line != "exit"))


