"""``ispflow report …``: the panel's graphs, top reports and usage figures for scripts.

Times without an offset are in the ISP's time zone (module settings), as in ``ispflow search``.
"""
from __future__ import annotations

import csv
import io
import json
import sys

import click
from flask.cli import with_appcontext

from ..app_state import settings
from ..database import engine_for
from ..module_settings import load
from ..retention.storage import human_bytes
from ..search.criteria import parse_address, parse_moment, parse_network
from .failure import fail
from ..analytics import bandwidth, rollups, top, usage

FORMATS = ("table", "csv", "json")


def _engine():
    return engine_for(settings().DATABASE_URL)


def _period(conn, start_text: str, end_text: str):
    zone = load(conn).zone
    try:
        return parse_moment(start_text, zone, "--from"), parse_moment(end_text, zone, "--to", True), zone
    except ValueError as exc:
        fail(str(exc))


def scope_from_options(conn, ip, account, exporter, interface, network) -> bandwidth.Scope:
    chosen = [name for name, value in (("--ip", ip), ("--account", account), ("--exporter", exporter),
                                        ("--network", network)) if value]
    if len(chosen) != 1:
        fail("give exactly one of --ip, --account, --exporter or --network.")
    if interface is not None and not exporter:
        fail("--interface needs --exporter.")
    if ip:
        try:
            return bandwidth.Scope("address", network=parse_network(ip))
        except ValueError as exc:
            fail(f"--ip: {exc}")
    if account:
        return bandwidth.Scope("account", account=account)
    if exporter:
        column = "address = cast(%(a)s as inet)" if _is_address(exporter) else "name = %(a)s"
        exporter_id = conn.exec_driver_sql(f"select id from ispflow.exporters where {column} order by id limit 1",
                                           {"a": exporter}).scalar()
        if exporter_id is None:
            fail(f"--exporter: no exporter {exporter!r} has sent flows.")
        return bandwidth.Scope("interface", exporter_id=exporter_id, if_index=interface)
    return bandwidth.Scope("network")


def _is_address(text: str) -> bool:
    try:
        parse_address(text)
        return True
    except ValueError:
        return False


@click.group("report")
def report_group():
    """Bandwidth, top reports and usage from the roll-ups."""


@report_group.command("bandwidth")
@click.option("--ip", help="Address or CIDR prefix (subscriber side).")
@click.option("--account")
@click.option("--exporter", help="Exporter address or name: its interfaces' traffic.")
@click.option("--interface", type=int, help="SNMP interface index of the exporter.")
@click.option("--network", is_flag=True, help="The whole network.")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@click.option("--step", help="Resolution: 1m, 5m, 30m, 2h … (default: suits the period).")
@click.option("--format", "output", type=click.Choice(FORMATS), default="table", show_default=True)
@with_appcontext
def bandwidth_command(ip, account, exporter, interface, network, start, end, step, output):
    """Rate in and out over time, with peak, average, 95th percentile and volume per direction."""
    with _engine().connect() as conn:
        scope = scope_from_options(conn, ip, account, exporter, interface, network)
        begin, finish, zone = _period(conn, start, end)
        try:
            result = bandwidth.series(conn, scope, begin, finish, bandwidth.parse_step(step) if step else None)
        except bandwidth.ScopeError as exc:
            fail(f"{exc}.")
    if output == "json":
        click.echo(json.dumps(result.to_json(zone), indent=1))
        return
    rates = list(zip(result.buckets, result.rate("in"), result.rate("out")))
    if output == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["time", "in_bps", "out_bps"])
        for moment, rate_in, rate_out in rates:
            writer.writerow([moment.astimezone(zone).isoformat(), f"{rate_in:.0f}", f"{rate_out:.0f}"])
        writer.writerow([])
        writer.writerow(["direction", "volume_bytes", "peak_bps", "average_bps", "p95_bps"])
        for direction, stats in result.stats.items():
            writer.writerow([direction, stats.volume_bytes, f"{stats.peak_bps:.0f}", f"{stats.average_bps:.0f}",
                             f"{stats.p95_bps:.0f}"])
        sys.stdout.write(out.getvalue())
        return
    click.echo(f"{result.scope.label()}, {result.start.astimezone(zone).isoformat()} to "
               f"{result.end.astimezone(zone).isoformat()}, step {int(result.step.total_seconds())} s")
    click.echo(f"({result.scope.perspective})")
    click.echo(f"{'time':<26} {'in':>14} {'out':>14}")
    for moment, rate_in, rate_out in rates:
        click.echo(f"{moment.astimezone(zone).isoformat():<26} {bandwidth.human_rate(rate_in):>14} "
                   f"{bandwidth.human_rate(rate_out):>14}")
    for direction, stats in result.stats.items():
        click.echo(f"{direction:<4} volume {human_bytes(stats.volume_bytes)}, "
                   f"peak {bandwidth.human_rate(stats.peak_bps)}, average {bandwidth.human_rate(stats.average_bps)}, "
                   f"95th percentile {bandwidth.human_rate(stats.p95_bps)}")


@report_group.command("top")
@click.option("--by", "by", type=click.Choice(top.REPORTS), required=True)
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@click.option("--limit", type=click.IntRange(1, 10000), default=10, show_default=True)
@click.option("--order", type=click.Choice(top.ORDERS), default="bytes", show_default=True)
@click.option("--ip", help="Only flows with an address in this address or prefix.")
@click.option("--account", help="Only traffic of this subscriber account.")
@click.option("--format", "output", type=click.Choice(FORMATS), default="table", show_default=True)
@with_appcontext
def top_command(by, start, end, limit, order, ip, account, output):
    """The heaviest sources, destinations, applications, conversations, subscribers or protocols."""
    with _engine().connect() as conn:
        begin, finish, zone = _period(conn, start, end)
        try:
            network = parse_network(ip) if ip else None
            result = top.report(conn, by, begin, finish, order, limit, account=account, network=network)
        except ValueError as exc:
            fail(f"{exc}.")
    if output == "json":
        click.echo(json.dumps(result.to_json(zone), indent=1))
        return
    if output == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["rank", by, "bytes", "packets", "flows"])
        for rank, row in enumerate(result.rows, start=1):
            writer.writerow(["" if row.other else rank, row.label, row.bytes, row.packets, row.flows])
        sys.stdout.write(out.getvalue())
        return
    click.echo(f"top {by} by {order}, {result.start.astimezone(zone).isoformat()} to "
               f"{result.end.astimezone(zone).isoformat()}")
    click.echo(f"{'#':>3} {by:<44} {'bytes':>12} {'packets':>12} {'flows':>10}")
    for rank, row in enumerate(result.rows, start=1):
        click.echo(f"{'' if row.other else rank:>3} {row.label:<44} {human_bytes(row.bytes):>12} "
                   f"{row.packets:>12} {row.flows:>10}")
    click.echo(f"    {'total':<44} {human_bytes(result.total.bytes):>12} {result.total.packets:>12} "
               f"{result.total.flows:>10}")


@report_group.command("usage")
@click.option("--month", required=True, help="Calendar month, e.g. 2026-03 (the ISP's time zone).")
@click.option("--account")
@click.option("--format", "output", type=click.Choice(("csv", "json")), default="csv", show_default=True)
@with_appcontext
def usage_command(month, account, output):
    """Volume and 95th percentile per account for billing."""
    with _engine().connect() as conn:
        zone = load(conn).zone
        try:
            rows = usage.monthly_usage(conn, usage.parse_month(month), zone, account)
        except ValueError as exc:
            fail(f"--month: {exc}.")
    if output == "json":
        click.echo(json.dumps([r.to_json() for r in rows], indent=1))
    else:
        sys.stdout.write(usage.to_csv(rows))


@report_group.command("rebuild")
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@with_appcontext
def rebuild_command(start, end):
    """Recompute the roll-ups of a period (after flows arrived late, e.g. from a replayed spool)."""
    engine = _engine()
    with engine.connect() as conn:
        begin, finish, _ = _period(conn, start, end)
    if finish <= begin:
        fail("--to must be later than --from.")
    rollups.rebuild(engine, begin, finish)
    click.echo(f"Rebuilt the roll-ups from {begin.isoformat()} to {finish.isoformat()}.")
