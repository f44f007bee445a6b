"""``ispflow collector``: run the NetFlow/IPFIX collector until SIGTERM or Ctrl-C, with the app's settings;
``ispflow exporters list|trust|untrust``: which senders' flows it stores."""
from __future__ import annotations

import logging
import os
import signal
import threading

import click
from flask.cli import with_appcontext

from .. import module_settings
from ..app_state import is_given, settings
from ..database import engine_for
from ..endpoints import parse_endpoint
from .failure import fail
from .search import actor


@click.command("collector")
@click.option("--listen", "listen", multiple=True, metavar="HOST:PORT",
              help="UDP address to receive on (repeatable; [::]:PORT for IPv6). "
                   "Default: ISPFLOW_COLLECTOR_LISTEN if the app or the environment sets it, else the module settings (0.0.0.0:2055).")
@click.option("--writers", default=2, show_default=True, help="Database connections storing flows.")
@click.option("--trust-first-exporter", is_flag=True,
              help="While no exporter is trusted and no router provisioned, trust the first sender (audited). "
                   "For a first run on a trial machine; leave it off in production.")
@with_appcontext
def collector_command(listen, writers, trust_first_exporter):
    """Receive NetFlow v5, v9 and IPFIX and store every flow."""
    _without_huge_pages()
    from ..collector.server import Collector  # numpy and the decoders: only when collecting

    config = settings()
    if not listen:
        if is_given("COLLECTOR_LISTEN"):
            listen = config.COLLECTOR_LISTEN
        else:
            with engine_for(config.DATABASE_URL).connect() as conn:
                listen = (module_settings.load(conn).collector_listen,)
    try:
        for value in listen:
            parse_endpoint(value, listen=True)
    except ValueError as error:
        fail(f"--listen: {error}.")
    metrics_listen = config.COLLECTOR_METRICS_LISTEN or None
    if metrics_listen:
        try:
            parse_endpoint(metrics_listen, listen=True)
        except ValueError as error:
            fail(f"ISPFLOW_COLLECTOR_METRICS_LISTEN: {error}.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    collector = Collector(
        config.DATABASE_URL, list(listen), config.SPOOL_DIR, config.STATE_DIR,
        spool_max_bytes=config.SPOOL_MAX_BYTES, writers=writers, trust_first=trust_first_exporter,
        metrics_listen=metrics_listen, rollups=config.COLLECTOR_ROLLUPS,
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


def _without_huge_pages() -> None:
    """numpy asks for transparent huge pages for its large arrays. Where the kernel compacts
    memory to serve such a request (``defrag`` = ``madvise``, Debian's default), every hour's
    roll-up flush paid ~0.6 s of kernel time a million flows for arrays that live a second
    (bench/collector_cpu.py): the collector's arrays are short-lived, so it asks for none."""
    import sys

    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    if "numpy" in sys.modules:   # already imported (read at import): tell it directly
        import numpy

        setter = getattr(getattr(getattr(numpy, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
        if setter is not None and os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0":
            setter(False)


@click.group("exporters")
def exporters_group():
    """Senders of NetFlow: only trusted exporters' (and provisioned routers') flows are stored."""


@exporters_group.command("list")
@with_appcontext
def exporters_list():
    """Every sender seen or trusted: whether its flows are stored, packets, flows, what was dropped."""
    from ..collector.trust import exporters

    with engine_for(settings().DATABASE_URL).connect() as conn:
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
    from ..collector import trust
    from ..roles import ADMIN

    try:
        address = trust.canonical(address)
    except ValueError:
        fail(f"{address!r} is not an IP address.")
    with engine_for(settings().DATABASE_URL).begin() as conn:
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
