"""Managing routers: add and edit them, and run provision / check / remove as logged jobs.

Plain functions over a SQLAlchemy session and a ``Settings``; the panel, the CLI and the rq
jobs call the same ones. A job's log and progress are written on their own connection line by
line as the driver reports, so the panel can show them while the job runs.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from .. import audit
from ..config import ConfigError, Settings
from ..database import engine_for
from ..endpoints import EndpointError, format_endpoint, parse_endpoint
from .base import NETFLOW_VERSIONS, ClockState, RouterError, RouterSpec, driver_for, vendors
from .crypto import decrypt, encrypt
from .models import Router, RouterJob

ACTIONS = ("provision", "check", "remove")
# A router whose clock is NTP-synchronised and within this of ours keeps evidence-grade times.
TRUSTED_SKEW_S = 5.0
# "Exporting" means flows from the router's address reached the collector this recently.
EXPORTING_WINDOW = timedelta(minutes=5)
# A queued or running job older than this is taken as abandoned (its worker died).
STALE_JOB = timedelta(minutes=15)


class InvalidRouter(ValueError):
    """A router field is wrong; ``field`` names it so a form can show the message next to it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class JobRefused(ValueError):
    """The job cannot be started now (another one runs on the same router)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- validation --------------------------------------------------------------------------
def check_name(name: str) -> str:
    name = (name or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
        raise InvalidRouter("name", "Use 1 to 63 letters, digits, dots, dashes or underscores.")
    return name


def check_host(host: str) -> str:
    host = (host or "").strip()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*", host):
        raise InvalidRouter("host", f"{host!r} is neither an IP address nor a host name.")
    return host


def check_interfaces(vendor: str, text: str) -> str:
    parts = [p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()]
    if not parts or [p.lower() for p in parts] == ["all"]:
        if vendor.startswith("cisco"):
            raise InvalidRouter("interfaces", "Cisco routers need the interfaces to watch by name, "
                                              "for example GigabitEthernet0/0,GigabitEthernet0/1.")
        return "all"
    bad = [p for p in parts if not re.fullmatch(r"[\w./:-]+", p) or p.lower() == "all"]
    if bad:
        raise InvalidRouter("interfaces", f"{bad[0]!r} is not an interface name; list names separated by commas.")
    return ",".join(parts)


def check_collector(text: str | None) -> str | None:
    if not (text or "").strip():
        return None
    try:
        return format_endpoint(*parse_endpoint(text))
    except EndpointError as exc:
        raise InvalidRouter("collector", f"{exc}.") from None


def check_fields(vendor: str, netflow_version: str, port, timeout_s) -> None:
    if vendor not in vendors():
        raise InvalidRouter("vendor", f"Choose one of {', '.join(vendors())}.")
    if netflow_version not in NETFLOW_VERSIONS:
        raise InvalidRouter("netflow_version", "Choose 5, 9 or ipfix.")
    supported = driver_for(vendor).versions
    if netflow_version not in supported:
        raise InvalidRouter("netflow_version", f"{driver_for(vendor).label} exports version "
                                               f"{' or '.join(supported)} only.")
    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        raise InvalidRouter("port", "A port is a number from 1 to 65535.")
    if not (0 < float(timeout_s) <= 300):
        raise InvalidRouter("timeout_s", "A timeout is from 0.1 to 300 seconds.")


# --- routers -----------------------------------------------------------------------------
def add_router(session: Session, settings: Settings, *, name: str, vendor: str, host: str, username: str,
               password: str, port: int | None = None, use_tls: bool = False, interfaces: str = "all",
               netflow_version: str = "9", collector: str | None = None, source_interface: str | None = None,
               timeout_s: float = 15.0, actor: str | None = None, role: str | None = None) -> Router:
    """Validate and store a new router, its password encrypted, audited as ``router.add``; raises InvalidRouter."""
    name = check_name(name)
    if session.execute(sa.select(Router.id).where(Router.name == name)).first():
        raise InvalidRouter("name", f"A router named {name!r} exists already.")
    if not password:
        raise InvalidRouter("password", "Enter the password ispflow logs in with.")
    router = Router(name=name, secret=encrypt(settings, password))
    _set_fields(router, vendor=vendor, host=host, username=username, port=port, use_tls=use_tls,
                interfaces=interfaces, netflow_version=netflow_version, collector=collector,
                source_interface=source_interface, timeout_s=timeout_s)
    session.add(router)
    session.flush()
    _audit_edit(session, router, "router.add", actor, role, changed=sorted(EDITABLE))
    return router


# What an edit may change (the name aside); the audit entry lists which, never the password.
EDITABLE = ("vendor", "host", "username", "port", "use_tls", "interfaces", "netflow_version", "collector",
            "source_interface", "timeout_s")


def _audit_edit(session: Session, router: Router, action: str, actor: str | None, role: str | None, **details):
    audit.record(session, actor=actor or "system", role=role, action=action,
                 criteria={"router": router.name, "router_id": router.id, "vendor": router.vendor,
                           "host": router.host, **details})


def update_router(session: Session, settings: Settings, router: Router, *, password: str | None = None,
                  actor: str | None = None, role: str | None = None, **fields) -> Router:
    """Change a router's fields, audited as ``router.update``; an empty ``password`` keeps the stored one."""
    old_name = router.name
    if "name" in fields:
        name = check_name(fields.pop("name"))
        clash = session.execute(sa.select(Router.id).where(Router.name == name, Router.id != router.id)).first()
        if clash:
            raise InvalidRouter("name", f"A router named {name!r} exists already.")
        router.name = name
    current = {key: getattr(router, key) for key in EDITABLE}
    before = dict(current)
    current.update(fields)
    _set_fields(router, **current)
    if password:
        router.secret = encrypt(settings, password)
    export_fields = ("vendor", "host", "port", "interfaces", "netflow_version", "collector", "source_interface")
    if any(getattr(router, key) != before[key] for key in export_fields):
        router.verified = False  # the router no longer has what we want until provisioned again
    session.flush()
    changed = [key for key in EDITABLE if getattr(router, key) != before[key]]
    renamed = {"renamed_from": old_name} if router.name != old_name else {}
    _audit_edit(session, router, "router.update", actor, role, changed=changed, password_changed=bool(password),
                **renamed)
    return router


def _set_fields(router: Router, *, vendor, host, username, port, use_tls, interfaces, netflow_version,
                collector, source_interface, timeout_s):
    check_fields(vendor, netflow_version, port, timeout_s)
    if not (username or "").strip():
        raise InvalidRouter("username", "Enter the username ispflow logs in with.")
    if source_interface and not re.fullmatch(r"[\w./:-]+", source_interface.strip()):
        raise InvalidRouter("source_interface", "Not an interface name.")
    router.vendor = vendor
    router.host = check_host(host)
    router.username = username.strip()
    router.port = port
    router.use_tls = bool(use_tls) and vendor == "mikrotik"
    router.interfaces = check_interfaces(vendor, interfaces)
    router.netflow_version = netflow_version
    router.collector = check_collector(collector)
    router.source_interface = (source_interface or "").strip() or None
    router.timeout_s = float(timeout_s)


def find_router(session: Session, name: str) -> Router | None:
    return session.execute(sa.select(Router).where(Router.name == name)).scalar_one_or_none()


def collector_of(router: Router, settings: Settings) -> tuple[str, int]:
    """Where this router should export to: its own collector, else the module settings'
    export address, else ISPFLOW_EXPORT_TARGET."""
    text = router.collector or _module_export_target(router) or settings.EXPORT_TARGET
    if not text:
        raise ConfigError(f"Router {router.name} has no collector address and no export address is set; "
                          "set the router's collector (HOST:PORT), the module settings' export address "
                          "or ISPFLOW_EXPORT_TARGET.")
    try:
        return parse_endpoint(text)
    except EndpointError as exc:
        raise ConfigError(f"The collector address of router {router.name} is wrong: {exc}.") from None


def _module_export_target(router: Router) -> str:
    from sqlalchemy.orm import object_session

    from .. import module_settings

    session = object_session(router)
    return module_settings.load(session).export_target if session is not None else ""


def spec_for(router: Router, settings: Settings, with_password: bool = True,
             need_collector: bool = True) -> RouterSpec:
    """What a driver needs; a clock check can do without a collector (then host "" and port 0)."""
    try:
        host, port = collector_of(router, settings)
    except ConfigError:
        if need_collector:
            raise
        host, port = "", 0
    previous = None
    if router.provisioned_collector:
        try:
            previous = parse_endpoint(router.provisioned_collector)
        except EndpointError:
            previous = None
    return RouterSpec(
        host=router.host, port=router.port, username=router.username,
        password=decrypt(settings, router.secret) if with_password else "",
        collector_host=host, collector_port=port, use_tls=router.use_tls,
        interfaces=router.interface_list, netflow_version=router.netflow_version,
        source_interface=router.source_interface, previous_collector=previous,
        os_version=router.os_version, timeout=router.timeout_s,
    )


def preview(router: Router, settings: Settings) -> tuple[list[str], str | None]:
    """The commands provisioning would send to an unconfigured router, and why not if it cannot."""
    try:
        driver = driver_for(router.vendor)(spec_for(router, settings, with_password=False))
        return driver.plan(connected=False), None
    except (RouterError, ConfigError, ValueError) as exc:
        return [], str(exc)


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
    def clock_trusted(self) -> bool:
        return clock_trusted(self.router.ntp_synced, self.router.clock_skew_s)


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


# --- jobs --------------------------------------------------------------------------------
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
    _audit_edit(session, router, f"router.{action}", requested_by, None, job_id=job.id)
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
            message = {"provision": _provision, "check": _check, "remove": _remove}[job.action](
                session, settings, router, log)
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


def _driver(router: Router, settings: Settings, log: JobLog):
    return driver_for(router.vendor)(spec_for(router, settings), log=log)


def _record_clock(router: Router, clock: ClockState) -> None:
    router.ntp_synced = clock.synchronized
    router.ntp_detail = clock.detail
    router.clock_skew_s = clock.skew_s
    router.checked_at = clock.read_at


def _describe_clock(clock: ClockState) -> str:
    skew = "unknown" if clock.skew_s is None else f"{clock.skew_s:+.1f} s"
    trusted = clock_trusted(clock.synchronized, clock.skew_s)
    verdict = "its flow times can be trusted as evidence" if trusted else "its flow times are NOT evidence-grade"
    return f"{clock.detail}; clock skew {skew}: {verdict}."


def _provision(session: Session, settings: Settings, router: Router, log: JobLog) -> str:
    driver = _driver(router, settings, log)
    log(f"Provisioning {router.name} to export to {driver.spec.collector_host}:{driver.spec.collector_port}.", 5)
    with driver:
        router.os_version = driver.test_connection() or router.os_version
        log("Connected.", 20)
        result = driver.apply()
        log(result.summary, 60)
        verification = driver.verify()
        log("Read back: " + ("export configured as planned." if verification.ok
                             else "; ".join(verification.problems) + "."), 80)
        clock = driver.read_clock()
        log(_describe_clock(clock), 95)
    host, port = driver.spec.collector_host, driver.spec.collector_port
    router.provisioned_at = utcnow()
    router.provisioned_collector = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    router.verified = verification.ok
    router.verified_at = utcnow() if verification.ok else None
    router.last_error = None if verification.ok else "; ".join(verification.problems)
    _record_clock(router, clock)
    session.commit()
    if not verification.ok:
        raise RouterError("The commands were applied but reading the configuration back shows: "
                          + "; ".join(verification.problems) + ".")
    from ..signals import router_provisioned

    router_provisioned.send(router.name, router=router.name, vendor=router.vendor)
    return f"{router.name} exports to {host}:{port}; verified by reading the configuration back."


def _check(session: Session, settings: Settings, router: Router, log: JobLog) -> str:
    driver = driver_for(router.vendor)(spec_for(router, settings, need_collector=False), log=log)
    verification = None
    with driver:
        router.os_version = driver.test_connection() or router.os_version
        log("Connected.", 30)
        clock = driver.read_clock()
        log(_describe_clock(clock), 70)
        if driver.spec.collector_host:
            verification = driver.verify()
            log("Export: " + ("configured as planned." if verification.ok
                              else "; ".join(verification.problems) + "."), 90)
    _record_clock(router, clock)
    if verification is not None:
        router.verified = verification.ok
        if verification.ok:
            router.verified_at = utcnow()
    router.last_error = None
    session.commit()
    return _describe_clock(clock)


def _remove(session: Session, settings: Settings, router: Router, log: JobLog) -> str:
    driver = _driver(router, settings, log)
    log(f"Removing the export to {driver.spec.collector_host}:{driver.spec.collector_port} from {router.name}.", 5)
    with driver:
        log("Connected.", 20)
        result = driver.remove()
        log("Nothing to remove." if result.unchanged else result.summary, 70)
        remaining = driver.read_export()
    ours = remaining.exports_to(driver.spec.collector_host, driver.spec.collector_port)
    if ours:
        raise RouterError("The removal commands were applied but the router still exports to our collector.")
    router.verified = False
    router.verified_at = None
    router.provisioned_collector = None
    router.last_error = None
    session.commit()
    return f"{router.name} no longer exports to ispflow's collector."


def check_clock(database_url: str, settings: Settings, router_id: int) -> ClockState:
    """Read one router's NTP state and clock and store it (the periodic check, no job row)."""
    with Session(engine_for(database_url)) as session:
        router = session.get(Router, router_id)
        try:
            with driver_for(router.vendor)(spec_for(router, settings, need_collector=False)) as driver:
                clock = driver.read_clock()
        except (RouterError, ConfigError) as exc:
            router.ntp_synced, router.ntp_detail, router.checked_at = None, f"check failed: {exc}", utcnow()
            router.clock_skew_s = None
            session.commit()
            raise
        _record_clock(router, clock)
        session.commit()
        return clock


def check_all_clocks(database_url: str, settings: Settings) -> dict[str, str]:
    """Check every router's clock; returns name → one line (errors do not stop the others)."""
    with Session(engine_for(database_url)) as session:
        routers = list(session.execute(sa.select(Router.id, Router.name).order_by(Router.name)).all())
    outcome = {}
    for router_id, name in routers:
        try:
            outcome[name] = _describe_clock(check_clock(database_url, settings, router_id))
        except (RouterError, ConfigError) as exc:
            outcome[name] = f"check failed: {exc}"
    return outcome
