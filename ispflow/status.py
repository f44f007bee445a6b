"""Is NetFlow being collected? The liveness checks behind the status page, the banner and
``ispflow status``.

The module is *active* when it is enabled, a collector sent a heartbeat within the last
HEARTBEAT_STALE, flows arrived within the last FLOWS_RECENT, an rq worker is registered and the
scheduler holds its lock. The first check that fails is the reason people are shown.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import redis
import sqlalchemy as sa

from . import module_settings
from .collector.sflow import SFLOW_VERSION_CODE
from .config import Settings
from .database import engine_for
from .signals import collector_down

log = logging.getLogger(__name__)

HEARTBEAT_STALE = timedelta(seconds=30)   # the collector beats every 5 s or faster
FLOWS_RECENT = timedelta(minutes=10)
FAILED_JOBS_SHOWN = 10
CACHE_SECONDS = 5.0
LIVENESS_KEY = "ispflow:liveness:state"   # the liveness job's last verdict, to send signals on changes

# exporters.netflow_version as people name the formats
EXPORT_FORMATS = {5: "NetFlow v5", 9: "NetFlow v9", 10: "IPFIX", SFLOW_VERSION_CODE: "sFlow v5"}

ACTIVE_HEADLINE = "NetFlow is enabled"
INACTIVE_HEADLINE = "NetFlow is not active!"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class FailedJob:
    id: str
    function: str
    ended_at: datetime | None
    error: str


@dataclass
class Status:
    checked_at: datetime
    enabled: bool
    checks: list[Check]
    collectors: list = field(default_factory=list)   # rows of ispflow.collector_heartbeats
    exporters: list = field(default_factory=list)    # rows of ispflow.exporters, with .stale
    workers: list[str] = field(default_factory=list)
    scheduler: str | None = None
    failed_jobs: list[FailedJob] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.enabled and all(c.ok for c in self.checks)

    @property
    def reason(self) -> str | None:
        """Why NetFlow is not active, in one sentence; None when it is."""
        if not self.enabled:
            return "The NetFlow module is disabled in the module settings."
        return next((c.detail for c in self.checks if not c.ok), None)

    @property
    def headline(self) -> str:
        return ACTIVE_HEADLINE if self.active else INACTIVE_HEADLINE

    @property
    def collecting_problem(self) -> str | None:
        """The banner's text: set only when the module is enabled but not collecting."""
        return self.reason if self.enabled and not self.active else None


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))  # an exporter's clock may run ahead
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def database_checks(conn, now: datetime) -> tuple[bool, list[Check], list, list]:
    """(enabled, checks, collectors, exporters) from the database."""
    enabled = module_settings.load(conn).enabled
    collectors = conn.execute(sa.text(
        "select collector, hostname, pid, started_at, beat_at, counters from ispflow.collector_heartbeats "
        "order by beat_at desc")).all()
    if not collectors:
        heartbeat = Check("collector", False, "No collector is running: none has ever sent a heartbeat.")
    elif now - collectors[0].beat_at > HEARTBEAT_STALE:
        heartbeat = Check("collector", False, "The collector stopped: its last heartbeat was "
                          f"{_ago(collectors[0].beat_at, now)} ({collectors[0].beat_at:%Y-%m-%d %H:%M:%S %Z}).")
    else:
        heartbeat = Check("collector", True, f"{len([c for c in collectors if now - c.beat_at <= HEARTBEAT_STALE])} "
                          f"collector process(es) alive, last heartbeat {_ago(collectors[0].beat_at, now)}.")
    exporters = conn.execute(sa.text(
        "select address, name, netflow_version, last_seen, last_flow_at, flows, lost_flows, decode_errors, "
        "clock_skew_s, (last_flow_at is null or last_flow_at < :recent) as stale "
        "from ispflow.exporters order by address"), {"recent": now - FLOWS_RECENT}).all()
    last_flow = max((e.last_flow_at for e in exporters if e.last_flow_at), default=None)
    # The flows themselves too, in case exporters' bookkeeping lags; bounded, so one chunk at most.
    stored = conn.execute(sa.text("select max(ts_end) from ispflow.flows "
                                  "where ts_start >= :since and ts_start <= :now"),
                          {"since": now - FLOWS_RECENT, "now": now}).scalar()
    last_flow = max(filter(None, (last_flow, stored)), default=None)
    minutes = int(FLOWS_RECENT.total_seconds() // 60)
    if last_flow is None:
        flows = Check("flows", False, f"No flows arrived in the last {minutes} minutes.{_untrusted(conn, now)}")
    elif now - last_flow > FLOWS_RECENT:
        flows = Check("flows", False, f"No flows arrived in the last {minutes} minutes "
                      f"(the last one {_ago(last_flow, now)}).")
    else:
        flows = Check("flows", True, f"Flows are arriving (the last one {_ago(last_flow, now)}).")
    return enabled, [heartbeat, flows], collectors, exporters


def _untrusted(conn, now: datetime) -> str:
    """Why there may be no flows: recent senders whose packets are dropped because nobody trusted them."""
    from .collector.trust import exporters

    dropping = [row["address"] for row in exporters(conn) if not row["storing"]
                and row["last_seen"] is not None and now - row["last_seen"] <= FLOWS_RECENT]
    if not dropping:
        return ""
    return (f" {len(dropping)} sender(s) ({', '.join(dropping[:3])}{', …' if len(dropping) > 3 else ''}) "
            "sent packets that were dropped because they are not trusted exporters.")


def job_checks(settings: Settings) -> tuple[list[Check], list[str], str | None, list[FailedJob]]:
    """(checks, worker names, scheduler name, recent failures) from Redis."""
    from rq import Worker
    from rq.job import Job
    from rq.registry import FailedJobRegistry

    from .jobs import queue
    from .worker import scheduler_owner

    jobs = queue(settings)
    workers = sorted(w.name for w in Worker.all(connection=jobs.connection, queue=jobs))
    scheduler = scheduler_owner(jobs.connection)
    checks = [
        Check("worker", bool(workers), f"{len(workers)} job worker(s) running." if workers
              else "No job worker is running: start it with 'ispflow worker'."),
        Check("scheduler", scheduler is not None, "The job scheduler is running." if scheduler
              else "The job scheduler is not running, so retention and liveness jobs do not run: "
                   "start 'ispflow worker'."),
    ]
    registry = FailedJobRegistry(queue=jobs)
    ids = registry.get_job_ids(0, FAILED_JOBS_SHOWN - 1, desc=True)
    failed = []
    for job in Job.fetch_many(ids, connection=jobs.connection):
        if job is None:
            continue
        result = job.latest_result()
        error = _exception_line(result and result.exc_string)
        failed.append(FailedJob(job.id, job.func_name or "?", job.ended_at, error))
    return checks, workers, scheduler, failed


def _exception_line(traceback: str | None) -> str:
    """The "Type: message" line of a traceback (the last unindented one that is not a footnote)."""
    for line in reversed((traceback or "").splitlines()):
        if line.strip() and not line[0].isspace() and not line.startswith("("):
            return line
    return ""


def current_status(settings: Settings, now: datetime | None = None) -> Status:
    """Check everything now. An unreachable database or Redis is itself the reason shown."""
    now = now or datetime.now(timezone.utc)
    try:
        with engine_for(settings.DATABASE_URL).connect() as conn:
            enabled, checks, collectors, exporters = database_checks(conn, now)
    except sa.exc.OperationalError:
        return Status(now, True, [Check("database", False, "The database is unreachable.")])
    try:
        redis_checks, workers, scheduler, failed = job_checks(settings)
    except redis.exceptions.RedisError:
        redis_checks = [Check("redis", False, "Redis is unreachable, so no job runs.")]
        workers, scheduler, failed = [], None, []
    return Status(now, enabled, checks + redis_checks, collectors, exporters, workers, scheduler, failed)


_cache: dict[tuple[str, str], tuple[float, Status]] = {}
_last_problem: dict[tuple[str, str], str | None] = {}
_cache_lock = threading.Lock()


def cached_status(settings: Settings, max_age: float = CACHE_SECONDS) -> Status:
    """The status, recomputed at most every ``max_age`` seconds per process (for every page view).

    A change from collecting to not collecting seen here sends ``collector_down`` in this process,
    so a host panel hears it without running the worker in its own process.
    """
    key = (settings.DATABASE_URL, settings.REDIS_URL)
    with _cache_lock:
        hit = _cache.get(key)
        if hit and time.monotonic() - hit[0] < max_age:
            return hit[1]
    status = current_status(settings)
    with _cache_lock:
        _cache[key] = (time.monotonic(), status)
        previous = _last_problem.get(key)
        _last_problem[key] = status.collecting_problem
    if status.collecting_problem and not previous:
        collector_down.send("ispflow.status", reason=status.collecting_problem)
    return status


def forget_cached() -> None:
    """Drop the cached status (after settings change, and in tests)."""
    with _cache_lock:
        _cache.clear()


def check_liveness(settings: Settings | None = None) -> str:
    """The every-minute job: check, and send ``collector_down`` when collecting stops.

    Returns the verdict (``active``, ``down`` or ``disabled``); the previous one is kept in
    Redis so each stop is signalled once, however many worker processes run the job.
    """
    from .jobs import job_settings, redis_connection

    settings = settings or job_settings()
    status = current_status(settings)
    verdict = "active" if status.active else ("down" if status.enabled else "disabled")
    previous = redis_connection(settings.REDIS_URL).getset(LIVENESS_KEY, verdict)
    if verdict == "down" and (previous or b"").decode() != "down":
        log.warning("NetFlow is not active: %s", status.reason)
        collector_down.send("ispflow.status", reason=status.reason)
    return verdict
