"""``ispflow collector``: run the NetFlow/IPFIX collector until SIGTERM or Ctrl-C."""
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
@with_appcontext
def collector_command(listen, writers):
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
        spool_max_bytes=config["ISPFLOW_SPOOL_MAX_BYTES"], writers=writers,
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
