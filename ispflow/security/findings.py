"""Findings analysed an hour at a time, stored, and listed for a period.

The periodic job ``analyse_recent`` analyses each complete hour once (a few minutes after it
ends, when the exporters' active timeouts have flushed its flows) and stores what it found in
``ispflow.security_findings``; an hour analysed without findings is recorded too. The
security view and ``ispflow findings`` then read the stored findings, so looking at a day
costs the same whatever the day's flow count. A finding seen in several hours (a beacon, a
slow scan) is one row of the view, with the number of hours and its highest score.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from .. import tables
from ..config import Settings
from ..database import engine_for
from ..geoip import GeoIP, geoip
from . import settings as security_settings
from .detect import KINDS, Finding, detect_all


HOUR = timedelta(hours=1)
# How long after an hour ends its flows are taken as complete (the exporters' active timeout
# and the collector's batching, with a margin).
SETTLE = timedelta(minutes=5)
# How far back the periodic job catches up after a stop.
CATCH_UP = timedelta(hours=24)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def complete_hours(start: datetime, end: datetime, now: datetime) -> list[datetime]:
    """Starts of the whole hours within ``[start, end)`` that have ended and settled by ``now``."""
    limit = min(end, now - SETTLE)
    hour = floor_hour(start)
    if hour < start:
        hour += HOUR
    hours = []
    while hour + HOUR <= limit:
        hours.append(hour)
        hour += HOUR
    return hours


def analysed_hours(conn, start: datetime, end: datetime) -> set[datetime]:
    return set(conn.execute(sa.text(
        "select window_start from ispflow.security_windows where window_start >= :start and window_start < :end"
    ), {"start": start, "end": end}).scalars())


def analyse_hour(conn, hour: datetime, settings: security_settings.SecuritySettings, geo: GeoIP) -> list[Finding]:
    """Detect and store the findings of one hour, replacing an earlier analysis. The caller commits."""
    started = time.monotonic()
    end = hour + HOUR
    found = detect_all(conn, hour, end, settings, geo)
    windows, findings = tables.security_windows, tables.security_findings
    conn.execute(sa.delete(windows).where(windows.c.window_start == hour))
    conn.execute(sa.insert(windows).values(window_start=hour, window_end=end, findings=len(found),
                                           seconds=time.monotonic() - started))
    if found:
        conn.execute(sa.insert(findings), [
            {"kind": f.kind, "window_start": hour, "window_end": end, "subject": f.subject, "peer": f.peer,
             "port": f.port, "account": f.account, "label": f.label, "score": f.score, "summary": f.summary,
             "evidence": f.evidence, "first_seen": f.first_seen, "last_seen": f.last_seen} for f in found])
    return found


def analyse_period(engine, start: datetime, end: datetime, geo: GeoIP, *, now: datetime | None = None,
                   again: bool = False) -> int:
    """Analyse the complete hours of ``[start, end)`` not analysed yet (all with ``again``).

    One transaction per hour, so an interrupted run keeps what it finished. Returns the
    number of hours analysed.
    """
    now = now or datetime.now(timezone.utc)
    with engine.connect() as conn:
        done = set() if again else analysed_hours(conn, start, end)
        thresholds = security_settings.load(conn)
    hours = [h for h in complete_hours(start, end, now) if h not in done]
    for hour in hours:
        with engine.begin() as conn:
            analyse_hour(conn, hour, thresholds, geo)
    return len(hours)


def purge_expired(conn, now: datetime) -> int:
    """Delete findings and alerts older than the flows' retention period: they name addresses
    and accounts taken from the flows, so they go when the flows do. The caller commits."""
    from ..module_settings import load, months_before

    before = months_before(now, load(conn).retention_flows_months)
    conn.execute(sa.text("delete from ispflow.alerts where last_seen < :before"), {"before": before})
    return conn.execute(sa.text("delete from ispflow.security_windows where window_end <= :before"),
                        {"before": before}).rowcount


def analyse_recent(settings: Settings | None = None, now: datetime | None = None) -> str:
    """Periodic job: analyse the settled hours of the last day that were not analysed yet, and
    forget findings and alerts past the retention period."""
    from ..jobs import job_settings
    from ..module_settings import load

    settings = settings or job_settings()
    engine = engine_for(settings.DATABASE_URL)
    now = now or datetime.now(timezone.utc)
    with engine.begin() as conn:
        purge_expired(conn, now)
    with engine.connect() as conn:
        if not load(conn).enabled:
            return "module disabled"
    with engine.connect() as lock:  # one analysis at a time, should a run outlast the interval
        if not lock.execute(sa.text("select pg_try_advisory_lock(hashtext('ispflow.security_findings'))")).scalar():
            return "another analysis is running"
        try:
            count = analyse_period(engine, floor_hour(now - CATCH_UP), now, geoip(settings), now=now)
        finally:
            lock.execute(sa.text("select pg_advisory_unlock(hashtext('ispflow.security_findings'))"))
    return f"analysed {count} hour(s)"


def grouped_findings(conn, start: datetime, end: datetime, kind: str | None = None, limit: int = 500) -> list:
    """Findings of the hours in ``[start, end)``, one row per subject, peer, port and label,
    highest score first. Each row has the summary and evidence of its highest-scoring hour."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return conn.execute(sa.text(f"""
        select kind, subject, peer, port, label, max(account) as account, max(score) as score,
               count(*) as hours, min(first_seen) as first_seen, max(last_seen) as last_seen,
               (array_agg(summary order by score desc))[1] as summary,
               (array_agg(evidence order by score desc))[1] as evidence
        from ispflow.security_findings
        where window_start >= :start and window_start < :end {"and kind = :kind" if kind else ""}
        group by kind, subject, peer, port, label
        order by max(score) desc, kind, subject
        limit :limit
    """), {"start": start, "end": end, "kind": kind, "limit": limit}).all()


def coverage(conn, start: datetime, end: datetime, now: datetime | None = None) -> tuple[int, int]:
    """(hours analysed, settled hours) of the period, so the view can say what is missing."""
    now = now or datetime.now(timezone.utc)
    return len(analysed_hours(conn, start, end)), len(complete_hours(start, end, now))


def search_link(row) -> dict:
    """The compliance search's fields that show the flows behind a (grouped) finding."""
    args = {"ip": str(row.subject), "ip_side": "src" if row.kind in ("scan", "bruteforce", "beacon") else "either",
            "from": row.first_seen.astimezone(timezone.utc).replace(microsecond=0).isoformat(),
            "to": (row.last_seen.astimezone(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)).isoformat()}
    if row.peer is not None:
        args["peer"] = str(row.peer)
    if row.port is not None:
        args["port"], args["port_side"] = str(row.port), "dst"
    return args
