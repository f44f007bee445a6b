"""rq jobs for routers: provision, check and remove one router, and the periodic clock check.

The panel and the CLI enqueue by router job id; the worker reads its settings from the
``ISPFLOW_*`` environment like every ispflow job.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from ..config import Settings
from ..jobs import job_settings, queue
from .actions import check_all_clocks
from .runs import create_job, run_job
from .models import Router, RouterJob

# The longest a router job may take before rq gives up on it.
JOB_TIMEOUT_S = 600


def enqueue(session: Session, settings: Settings, router: Router, action: str,
            requested_by: str | None = None) -> RouterJob:
    """Record a queued job for ``router`` and hand it to the rq worker; commits."""
    job = create_job(session, router, action, requested_by)
    session.commit()
    rq_job = queue(settings).enqueue(run_router_job, job.id, job_timeout=JOB_TIMEOUT_S,
                                     description=f"{action} router {router.name}")
    job.rq_job_id = rq_job.id
    session.commit()
    return job


def run_router_job(job_id: int) -> str:
    """Run one queued router job (provision, check or remove); returns its final state."""
    settings = job_settings()
    return run_job(settings.DATABASE_URL, settings, job_id).state


def check_all_routers() -> dict[str, str]:
    """Periodic: read every router's NTP state and clock skew into ``ispflow.routers``;
    nothing while the module is switched off (no router is contacted)."""
    from .. import module_settings
    from ..database import engine_for

    settings = job_settings()
    with engine_for(settings.DATABASE_URL).connect() as conn:
        if not module_settings.load(conn).enabled:
            return {}
    return check_all_clocks(settings.DATABASE_URL, settings)
