"""Whether a router is exporting and whether its clock can be trusted, for lists and pages."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from .models import Router, RouterJob

# A router whose clock is NTP-synchronised and within this of ours keeps evidence-grade times.
TRUSTED_SKEW_S = 5.0
# "Exporting" means flows from the router's address reached the collector this recently.
EXPORTING_WINDOW = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RouterStatus:
    """A router with what the collector saw from it and its latest job, for lists."""

    router: Router
    last_flow_at: datetime | None
    last_job: RouterJob | None

    @property
    def exporting(self) -> bool:
        return self.last_flow_at is not None and utcnow() - self.last_flow_at <= EXPORTING_WINDOW

    @property
    def plain_api(self) -> bool:
        """RouterOS API without SSL: the login sends the password in clear text."""
        return plain_api(self.router)

    @property
    def clock_trusted(self) -> bool:
        return clock_trusted(self.router.ntp_synced, self.router.clock_skew_s)


def plain_api(router: Router) -> bool:
    return router.vendor == "mikrotik" and not router.use_tls


def clock_trusted(synced: bool | None, skew_s: float | None) -> bool:
    return bool(synced) and skew_s is not None and abs(skew_s) <= TRUSTED_SKEW_S


def router_statuses(session: Session, routers: list[Router] | None = None) -> list[RouterStatus]:
    if routers is None:
        routers = list(session.execute(sa.select(Router).order_by(Router.name)).scalars())
    if not routers:
        return []
    hosts = [r.host for r in routers]
    seen = dict(session.execute(
        sa.text("select host(address), last_flow_at from ispflow.exporters where host(address) = any(:hosts)"),
        {"hosts": hosts},
    ).all())
    latest = {}
    for job in session.execute(
        sa.select(RouterJob).where(RouterJob.router_id.in_([r.id for r in routers]))
        .order_by(RouterJob.router_id, RouterJob.id.desc()).ext(distinct_on(RouterJob.router_id))
    ).scalars():
        latest[job.router_id] = job
    return [RouterStatus(r, seen.get(r.host), latest.get(r.id)) for r in routers]


