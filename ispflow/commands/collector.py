"""``ispflow collector``: run the NetFlow/IPFIX collector until SIGTERM or Ctrl-C, with the app's settings."""
from __future__ import annotations

import logging
import signal
import threading

import click
from flask.cli import with_appcontext

from .. import module_settings
from ..app_state import is_given, settings
from ..database import engine_for
from ..endpoints import parse_endpoint
from .failure import fail


@click.command("collector")
@click.option("--listen", "listen", multiple=True, metavar="HOST:PORT",
              help="UDP address to receive on (repeatable; [::]:PORT for IPv6). "
                   "Default: ISPFLOW_COLLECTOR_LISTEN if the app or the environment sets it, else the module settings (0.0.0.0:2055).")
@click.option("--writers", default=2, show_default=True, help="Database connections storing flows.")
@with_appcontext
def collector_command(listen, writers):
    """Receive NetFlow v5, v9 and IPFIX and store every flow."""
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    collector = Collector(
        config.DATABASE_URL, list(listen), config.SPOOL_DIR, config.STATE_DIR,
        spool_max_bytes=config.SPOOL_MAX_BYTES, writers=writers,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        collector.start()
    except OSError as error:
        fail(f"cannot listen on {', '.join(listen)} ({error.strerror or error}).")
    click.echo(f"ispflow collector: receiving on {', '.join(listen)} (ports {collector.ports()})", err=True)
    done.wait()
    click.echo("ispflow collector: stopping, storing what was received", err=True)
    collector.stop()
    click.echo(f"ispflow collector: stopped; {collector.counters['flows_stored']} flows stored", err=True)
