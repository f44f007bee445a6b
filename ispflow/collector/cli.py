"""``ispflow collector``: run the NetFlow/IPFIX collector until SIGTERM or Ctrl-C;
``ispflow exporters list|trust|untrust``: which senders' flows it stores."""
from __future__ import annotations

import logging
import os
import signal
import threading

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("collector")
@click.option("--listen", "listen", multiple=True, metavar="HOST:PORT",
              help="UDP address to receive on (repeatable; [::]:PORT for IPv6). "
                   "Default: ISPFLOW_COLLECTOR_LISTEN if set, else the module settings (0.0.0.0:2055).")
@click.option("--writers", default=2, show_default=True, help="Database connections storing flows.")
@click.option("--trust-first-exporter", is_flag=True,
              help="While no exporter is trusted and no router provisioned, trust the first sender (audited). "
                   "For a first run on a trial machine; leave it off in production.")
@with_appcontext
def collector_command(listen, writers, trust_first_exporter):
    """Receive NetFlow v5, v9 and IPFIX and store every flow."""
    from .. import module_settings
    from ..cli import fail
    from ..database import engine_for
    from .server import Collector
    from ..endpoints import parse_endpoint

    config = current_app.config
    if not listen:
        if "ISPFLOW_COLLECTOR_LISTEN" in os.environ:
            listen = config["ISPFLOW_COLLECTOR_LISTEN"]
        else:
            with engine_for(config["ISPFLOW_DATABASE_URL"]).connect() as conn:
                listen = (module_settings.load(conn).collector_listen,)
    try:
        for value in listen:
            parse_endpoint(value, listen=True)
    except ValueError as error:
        fail(f"--listen: {error}.")
    metrics_listen = config["ISPFLOW_COLLECTOR_METRICS_LISTEN"] or None
    if metrics_listen:
        try:
            parse_endpoint(metrics_listen, listen=True)
        except ValueError as error:
            fail(f"ISPFLOW_COLLECTOR_METRICS_LISTEN: {error}.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    collector = Collector(
        config["ISPFLOW_DATABASE_URL"], list(listen), config["ISPFLOW_SPOOL_DIR"], config["ISPFLOW_STATE_DIR"],
        spool_max_bytes=config["ISPFLOW_SPOOL_MAX_BYTES"], writers=writers, trust_first=trust_first_exporter,
        metrics_listen=metrics_listen,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        collector.start()
    except OSError as error:
        fail(f"cannot listen on {', '.join(listen)} ({error.strerror or error}).")
    click.echo(f"ispflow collector: receiving on {', '.join(listen)} (ports {collector.ports()})", err=True)
    if collector.metrics_port:
        click.echo(f"ispflow collector: metrics on port {collector.metrics_port}", err=True)
    done.wait()
    click.echo("ispflow collector: stopping, storing what was received", err=True)
    collector.stop()
    click.echo(f"ispflow collector: stopped; {collector.counters['flows_stored']} flows stored", err=True)


@click.group("exporters")
def exporters_group():
    """Senders of NetFlow: only trusted exporters' (and provisioned routers') flows are stored."""


@exporters_group.command("list")
@with_appcontext
def exporters_list():
    """Every sender seen or trusted: whether its flows are stored, packets, flows, what was dropped."""
    from ..database import engine_for
    from .trust import exporters

    with engine_for(current_app.config["ISPFLOW_DATABASE_URL"]).connect() as conn:
        rows = exporters(conn)
    if not rows:
        click.echo("No exporter has sent anything yet.")
        return
    click.echo(f"{'address':<40} {'stored':<22} {'packets':>10} {'flows':>12}  dropped")
    for row in rows:
        why = (f"yes (router {row['router']})" if row["router"] else "yes (trusted)") if row["storing"] else "NO (untrusted)"
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(row["dropped"].items())) or "-"
        click.echo(f"{row['address']:<40} {why:<22} {row['packets']:>10} {row['flows']:>12}  {dropped}")


def _change_trust(address: str, trusted: bool) -> None:
    from ..cli import fail
    from ..database import engine_for
    from ..roles import ADMIN
    from ..search.commands import actor
    from . import trust

    try:
        address = trust.canonical(address)
    except ValueError:
        fail(f"{address!r} is not an IP address.")
    with engine_for(current_app.config["ISPFLOW_DATABASE_URL"]).begin() as conn:
        if trusted:
            changed = trust.trust(conn, address, actor=actor(), role=ADMIN)
        else:
            changed = trust.untrust(conn, address, actor=actor(), role=ADMIN)
        router = trust.provisioned_router(conn, address)
    if trusted:
        click.echo(f"Trusted {address}: its flows are stored from now on." if changed else f"{address} was trusted already.")
    else:
        click.echo(f"Untrusted {address}: its packets are dropped from now on." if changed else
                   f"{address} was not trusted.")
        if router:
            click.echo(f"Note: {address} is the provisioned router {router!r}, whose flows are stored regardless.")


@exporters_group.command("trust")
@click.argument("address")
@with_appcontext
def exporters_trust(address):
    """Store the flows and NAT events ADDRESS sends (audited)."""
    _change_trust(address, True)


@exporters_group.command("untrust")
@click.argument("address")
@with_appcontext
def exporters_untrust(address):
    """Drop what ADDRESS sends from now on (audited); flows stored before are kept."""
    _change_trust(address, False)
