"""``ispflow routers …``: the panel's router functions on the command line.

Provision, check and remove run in the foreground (printing the job log as it goes) and are
recorded as jobs like the panel's, so the router page shows them too.
"""
from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from ..app_state import session, settings
from ..config import ConfigError
from ..routers.base import RouterError, driver_for, fingerprint, vendors
from ..routers.inventory import add_router, find_router, repin, spec_for
from ..routers.models import RouterJob
from ..routers.runs import JobRefused, create_job, run_job
from ..routers.status import clock_trusted, router_statuses
from ..routers.validation import InvalidRouter
from .failure import fail
from .search import actor


class VendorChoice(click.Choice):
    """The vendors of the driver registry, read when the option is parsed (drivers may register late)."""

    def __init__(self):
        super().__init__(())

    @property
    def choices(self):
        return tuple(vendors())

    @choices.setter
    def choices(self, _ignored):
        pass


@click.group("routers")
def routers_group():
    """Routers that export NetFlow to ispflow: add, provision, check, remove."""


def _router(name: str):
    router = find_router(session(), name)
    if router is None:
        fail(f"no router is named {name!r}; see `ispflow routers list`.")
    return router


@routers_group.command("add")
@click.argument("name")
@click.option("--vendor", required=True, type=VendorChoice())
@click.option("--host", required=True, help="Address the router is managed at.")
@click.option("--port", type=int, help="API / SSH port (default 8728, 8729 with --api-ssl, 22 for SSH).")
@click.option("--username", required=True)
@click.option("--api-ssl", is_flag=True, help="MikroTik: use API-SSL.")
@click.option("--interfaces", default="all", show_default=True, help="Comma-separated interfaces to watch.")
@click.option("--version", "netflow_version", default="9", show_default=True, type=click.Choice(["5", "9", "ipfix"]))
@click.option("--collector", help="HOST:PORT to export to (default ISPFLOW_EXPORT_TARGET).")
@click.option("--source-interface", help="Interface whose address the export comes from.")
@click.option("--timeout", "timeout_s", type=float, default=15.0, show_default=True, help="Seconds to wait for the router.")
@with_appcontext
def routers_add(name, vendor, host, port, username, api_ssl, interfaces, netflow_version, collector,
                source_interface, timeout_s):
    """Add a router; its password is read from standard input."""
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        router = add_router(
            session(), settings(), name=name, vendor=vendor, host=host, port=port, username=username,
            password=password, use_tls=api_ssl, interfaces=interfaces, netflow_version=netflow_version,
            collector=collector, source_interface=source_interface, timeout_s=timeout_s, actor=actor(),
        )
    except InvalidRouter as exc:
        fail(f"--{exc.field.replace('_', '-')}: {exc}" if exc.field != "password" else f"{exc} (on standard input)")
    except ConfigError as exc:
        fail(str(exc).rstrip("."))
    session().commit()
    click.echo(f"Added router {router.name} ({router.vendor} at {router.host}).")


@routers_group.command("list")
@with_appcontext
def routers_list():
    """List routers with their export and clock state."""
    rows = router_statuses(session())
    if not rows:
        click.echo("No routers.")
        return
    click.echo(f"{'NAME':<16} {'VENDOR':<11} {'HOST':<16} {'VERSION':<18} {'PROVISIONED':<17} "
               f"{'VERIFIED':<8} {'NTP':<6} {'SKEW':>8} EXPORTING")
    for row in rows:
        r = row.router
        ntp = "-" if r.ntp_synced is None else ("synced" if r.ntp_synced else "NO")
        skew = "-" if r.clock_skew_s is None else f"{r.clock_skew_s:+.1f}s"
        when = r.provisioned_at.strftime("%Y-%m-%d %H:%M") if r.provisioned_at else "-"
        click.echo(f"{r.name:<16} {r.vendor:<11} {r.host:<16} {(r.os_version or '-')[:18]:<18} {when:<17} "
                   f"{'yes' if r.verified else 'no':<8} {ntp:<6} {skew:>8} {'yes' if row.exporting else 'no'}"
                   + ("  PLAIN API" if row.plain_api else ""))
    if any(row.plain_api for row in rows):
        click.echo("PLAIN API: logins to these routers send the password in clear text; enable API-SSL on the "
                   "router and add it with --api-ssl.")


def _run(name: str, action: str) -> RouterJob:
    """Run ``action`` on the router now, its log echoed; a job that did not finish fails the command."""
    router = _router(name)
    try:
        job = create_job(session(), router, action, requested_by=actor())
    except JobRefused as exc:
        fail(str(exc).rstrip("."))
    session().commit()
    url = settings().DATABASE_URL
    try:
        done = run_job(url, settings(), job.id, echo=click.echo)
    except ConfigError as exc:
        fail(str(exc).rstrip("."))
    session().expire_all()
    if done.state != "finished":
        fail(done.message.rstrip("."))
    return done


@routers_group.command("provision")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Only print the commands that would be sent.")
@with_appcontext
def routers_provision(name, dry_run):
    """Configure the router to export NetFlow to ispflow's collector, then verify it."""
    if dry_run:
        router = _router(name)
        try:
            with driver_for(router.vendor)(spec_for(router, settings())) as driver:
                commands = driver.plan()
        except (RouterError, ConfigError) as exc:
            fail(str(exc).rstrip("."))
        if not commands:
            click.echo(f"{name} is configured as planned already; nothing would be sent.")
        for line in commands:
            click.echo(line)
        return
    job = _run(name, "provision")
    click.echo(job.message)


@routers_group.command("check")
@click.argument("name")
@with_appcontext
def routers_check(name):
    """Read the router's NTP state and clock; exit status 0 when synchronised, 1 when not."""
    job = _run(name, "check")
    router = _router(name)
    click.echo(job.message)
    if not clock_trusted(router.ntp_synced, router.clock_skew_s):
        sys.exit(1)


@routers_group.command("repin")
@click.argument("name")
@with_appcontext
def routers_repin(name):
    """Forget the pinned API-SSL certificate or SSH host key; the next connection pins anew (audited)."""
    router = _router(name)
    previous = fingerprint(router.pinned_key)
    repin(session(), router, actor=actor())
    session().commit()
    click.echo(f"Forgot {previous} of {name}; the next connection pins what the router presents then.")


@routers_group.command("remove")
@click.argument("name")
@with_appcontext
def routers_remove(name):
    """Take ispflow's export configuration off the router."""
    job = _run(name, "remove")
    click.echo(job.message)


@click.group("keys")
def keys_group():
    """The key that encrypts stored router passwords: generate a new one, rotate to it."""


@keys_group.command("generate")
def keys_generate():
    """Print a new random credential key for ISPFLOW_ENCRYPTION_KEY."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@keys_group.command("rotate")
@with_appcontext
def keys_rotate():
    """Re-encrypt every stored router password with the current key.

    Set the new key in ISPFLOW_ENCRYPTION_KEY and the old one in ISPFLOW_ENCRYPTION_KEY_PREVIOUS
    (or change ISPFLOW_SECRET_KEY and list the old derived key there), run this, then drop
    the previous key. Passwords no accepted key can read are left untouched and listed.
    """
    from ..routers.crypto import rotate

    from .. import audit

    try:
        done, unreadable = rotate(session(), settings())
    except ConfigError as exc:
        fail(str(exc).rstrip("."))
    audit.record(session(), actor=actor(), action="keys.rotate",
                 criteria={"re_encrypted": done, "unreadable": unreadable})
    session().commit()
    click.echo(f"Re-encrypted the passwords of {len(done)} router(s) with the current key.")
    if unreadable:
        fail(f"no accepted key reads the password of {', '.join(unreadable)}; list its key in "
             "ISPFLOW_ENCRYPTION_KEY_PREVIOUS and run this again, or enter the password again.")
