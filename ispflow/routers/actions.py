"""What each kind of router job does: provision, check and remove, and the periodic clock check."""
from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..config import ConfigError, Settings
from ..database import engine_for
from .base import ClockState, RouterError, driver_for, fingerprint
from .inventory import spec_for
from .models import Router
from .status import clock_trusted, utcnow

if TYPE_CHECKING:
    from .runs import JobLog


def _driver(router: Router, settings: Settings, log: JobLog):
    return driver_for(router.vendor)(spec_for(router, settings), log=log)


def _pin(session: Session, router: Router, driver, log, actor: str | None) -> None:
    """Pin what the router presented on its first connection, tell the job log, audit it."""
    if router.pinned_key or not driver.presented_key:
        return
    from .. import audit

    router.pinned_key, router.pinned_at = driver.presented_key, utcnow()
    log(f"Pinned {fingerprint(driver.presented_key)}: compare it with the router's own; "
        "a different one will be refused.")
    audit.record(session, actor=actor or "system", action="router.pin",
                 criteria={"router": router.name, "host": router.host, "key": fingerprint(driver.presented_key)})


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


def provision(session: Session, settings: Settings, router: Router, log: JobLog, actor: str | None = None) -> str:
    driver = _driver(router, settings, log)
    log(f"Provisioning {router.name} to export to {driver.spec.collector_host}:{driver.spec.collector_port}.", 5)
    with driver:
        _pin(session, router, driver, log, actor)
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


def check(session: Session, settings: Settings, router: Router, log: JobLog, actor: str | None = None) -> str:
    driver = driver_for(router.vendor)(spec_for(router, settings, need_collector=False), log=log)
    verification = None
    with driver:
        _pin(session, router, driver, log, actor)
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


def remove(session: Session, settings: Settings, router: Router, log: JobLog, actor: str | None = None) -> str:
    driver = _driver(router, settings, log)
    log(f"Removing the export to {driver.spec.collector_host}:{driver.spec.collector_port} from {router.name}.", 5)
    with driver:
        _pin(session, router, driver, log, actor)
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


# The job kinds a router job row may name, and what runs for each.
KINDS = {"provision": provision, "check": check, "remove": remove}


def check_clock(database_url: str, settings: Settings, router_id: int) -> ClockState:
    """Read one router's NTP state and clock and store it (the periodic check, no job row)."""
    with Session(engine_for(database_url)) as session:
        router = session.get(Router, router_id)
        try:
            with driver_for(router.vendor)(spec_for(router, settings, need_collector=False)) as driver:
                _pin(session, router, driver, lambda line: None, None)
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
