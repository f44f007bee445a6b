"""Routers as stored: add and edit them, find them, and build the spec a driver is given.

Passwords are stored encrypted and leave this module only inside a ``RouterSpec``.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .. import audit
from ..config import ConfigError, Settings
from ..endpoints import EndpointError, parse_endpoint
from .base import RouterError, RouterSpec, driver_for
from .crypto import decrypt, encrypt
from .models import Router
from .validation import (
    InvalidRouter, check_collector, check_fields, check_host, check_interfaces, check_name, check_password,
    check_source_interface, check_username,
)


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
    router = Router(name=name, secret=encrypt(settings, check_password(password)))
    _set_fields(router, vendor=vendor, host=host, username=username, port=port, use_tls=use_tls,
                interfaces=interfaces, netflow_version=netflow_version, collector=collector,
                source_interface=source_interface, timeout_s=timeout_s)
    session.add(router)
    session.flush()
    audit_change(session, router, "router.add", actor, role, changed=sorted(EDITABLE))
    return router


# What an edit may change (the name aside); the audit entry lists which, never the password.
EDITABLE = ("vendor", "host", "username", "port", "use_tls", "interfaces", "netflow_version", "collector",
            "source_interface", "timeout_s")


def audit_change(session: Session, router: Router, action: str, actor: str | None, role: str | None, **details):
    audit.record(session, actor=actor or "system", role=role, action=action,
                 criteria={"router": router.name, "router_id": router.id, "vendor": router.vendor,
                           "host": router.host, **details})


def update_router(session: Session, settings: Settings, router: Router, *, password: str | None = None,
                  actor: str | None = None, role: str | None = None, **fields) -> Router:
    """Change a router's fields, audited as ``router.update``; an empty ``password`` keeps the stored one.

    The stored password is only kept while it would go where it went before: a new host,
    port, username or transport needs the password entered again, so nobody who may edit a
    router can send its password to a machine of their choosing.
    """
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
    destination = ("vendor", "host", "port", "username", "use_tls")
    if password:
        router.secret = encrypt(settings, check_password(password))
    elif any(getattr(router, key) != before[key] for key in destination):
        raise InvalidRouter("password", "Enter the password again: the stored one is only sent to the host, "
                                        "port and username it was entered for.")
    if router.vendor != before["vendor"] or router.use_tls != before["use_tls"]:
        router.pinned_key = router.pinned_at = None  # another kind of key: pin what the next connection sees
    export_fields = ("vendor", "host", "port", "interfaces", "netflow_version", "collector", "source_interface")
    if any(getattr(router, key) != before[key] for key in export_fields):
        router.verified = False  # the router no longer has what we want until provisioned again
    session.flush()
    changed = [key for key in EDITABLE if getattr(router, key) != before[key]]
    renamed = {"renamed_from": old_name} if router.name != old_name else {}
    audit_change(session, router, "router.update", actor, role, changed=changed, password_changed=bool(password),
                **renamed)
    return router


def _set_fields(router: Router, *, vendor, host, username, port, use_tls, interfaces, netflow_version,
                collector, source_interface, timeout_s):
    check_fields(vendor, netflow_version, port, timeout_s)
    router.vendor = vendor
    router.host = check_host(host)
    router.username = check_username(username)
    router.port = port
    router.use_tls = bool(use_tls) and vendor == "mikrotik"
    router.interfaces = check_interfaces(vendor, interfaces)
    router.netflow_version = netflow_version
    router.collector = check_collector(collector)
    router.source_interface = check_source_interface(source_interface)
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
        os_version=router.os_version, timeout=router.timeout_s, pinned_key=router.pinned_key,
    )


def preview(router: Router, settings: Settings) -> tuple[list[str], str | None]:
    """The commands provisioning would send to an unconfigured router, and why not if it cannot."""
    try:
        driver = driver_for(router.vendor)(spec_for(router, settings, with_password=False))
        return driver.plan(connected=False), None
    except (RouterError, ConfigError, ValueError) as exc:
        return [], str(exc)


def repin(session: Session, router: Router, actor: str, role: str | None = None) -> None:
    """Forget the pinned certificate or host key (an admin's decision, audited): the next
    connection pins what the router presents then. The caller commits."""
    audit.record(session, actor=actor, role=role, action="router.repin",
                 criteria={"router": router.name, "host": router.host, "previous_key": router.pinned_key})
    router.pinned_key = router.pinned_at = None
