"""``ispflow search``, ``ispflow who`` and ``ispflow audit verify``: the same answers as the panel.

Every search and lookup is audited like the panel's, with the actor ``cli:<unix user>``.
"""
from __future__ import annotations

import getpass
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import audit
from ..app_state import settings
from ..config import Settings
from ..geoip import row_origins
from ..database import engine_for, raw_connection
from ..module_settings import load
from ..search.criteria import ORDERS, SIDES, CriteriaError, parse_address, parse_moment
from ..search.export import write_csv
from ..search.names import port_name, protocol_name
from .failure import fail

OPTION_OF_FIELD = {"ip": "--ip", "ip_side": "--side", "peer": "--peer", "from": "--from", "to": "--to",
                   "protocol": "--protocol", "port": "--port", "port_side": "--port-side", "account": "--account",
                   "service": "--service", "case_ref": "--case"}
CLI_ROLE = "compliance"


def database_url() -> str:
    return settings().DATABASE_URL


def actor() -> str:
    return f"cli:{getpass.getuser()}"


@click.command("search")
@click.option("--ip", "ip", help="Address or CIDR range, IPv4 or IPv6.")
@click.option("--side", "ip_side", type=click.Choice(SIDES), default="either", show_default=True)
@click.option("--peer", help="The other end of the conversation.")
@click.option("--from", "start", required=True, help="Start, ISO 8601 (the ISP's time zone unless an offset is given).")
@click.option("--to", "end", required=True, help="End (exclusive); a bare date includes that day.")
@click.option("--protocol", help="Number or name (tcp, udp, icmp, …).")
@click.option("--port", help="Port, range or list: 443, 1000-2000, 80,443.")
@click.option("--port-side", type=click.Choice(SIDES), default="either", show_default=True)
@click.option("--account")
@click.option("--service")
@click.option("--case", "case_ref", required=True, help="Case reference or legal basis (audited).")
@click.option("--format", "output", type=click.Choice(["table", "csv"]), default="table", show_default=True)
@click.option("--order", type=click.Choice(ORDERS), default="newest", show_default=True, help="Table order.")
@click.option("--limit", type=click.IntRange(1), default=1000, show_default=True, help="Rows shown as a table.")
@with_appcontext
def search(ip, ip_side, peer, start, end, protocol, port, port_side, account, service, case_ref, output, order,
           limit):
    """Search the retained flows; --format csv writes the panel's export columns to stdout."""
    from ..search.query import fetch_page, totals
    from ..search.query import subscriber_scope as criteria_scope_check
    from ..search.service import criteria_from_text

    values = {"ip": ip, "ip_side": ip_side, "peer": peer, "from": start, "to": end, "protocol": protocol,
              "port": port, "port_side": port_side, "account": account, "service": service, "case_ref": case_ref}
    engine = engine_for(database_url())
    with engine.connect() as conn:
        try:
            criteria, module = criteria_from_text(conn, values)
        except CriteriaError as exc:
            field = next(iter(exc.errors))
            fail(f"{OPTION_OF_FIELD.get(field, field)}: {exc.first()}")
        try:
            criteria_scope_check(conn, criteria)
        except CriteriaError as exc:
            field = next(iter(exc.errors))
            fail(f"{OPTION_OF_FIELD.get(field, field)}: {exc.first()}")
        if output == "csv":
            # Audited before the first row leaves; the entry after it adds the count and the hash.
            audit.record(conn, actor=actor(), role=CLI_ROLE, action="export.start", criteria=criteria.to_json(),
                         case_ref=criteria.case_ref, row_count=totals(conn, criteria).flows)
            conn.commit()
            sys.stdout.flush()
            out = sys.stdout.buffer
            url = database_url()
            dbapi = raw_connection(url)
            try:
                result = write_csv(dbapi, criteria, out, zone_name=module.timezone, connect=lambda: raw_connection(url))
            finally:
                dbapi.close()
            out.flush()
            audit.record(conn, actor=actor(), role=CLI_ROLE, action="export", criteria=criteria.to_json(),
                         case_ref=criteria.case_ref, row_count=result.rows, export_sha256=result.sha256)
            conn.commit()
            click.echo(f"{result.rows} rows, sha256 {result.sha256}", err=True)
            return
        overall = totals(conn, criteria)
        audit.record(conn, actor=actor(), role=CLI_ROLE, action="search", criteria={**criteria.to_json(),
                     "order": order}, case_ref=criteria.case_ref, row_count=overall.flows)
        conn.commit()
        shown, cursor = 0, None
        click.echo(_table_line(("start", "end", "source", "destination", "protocol", "bytes", "packets",
                                "status", "account", "service", "source origin", "destination origin")))
        settings = Settings.from_flask(current_app.config)
        while shown < limit:
            page = fetch_page(conn, criteria, order, cursor, size=min(1000, limit - shown))
            places = row_origins(page.rows, settings)
            for row in page.rows:
                click.echo(_table_line(_table_row(row, module.zone)
                                       + (places[str(row.src_addr)].label() or "-",
                                          places[str(row.dst_addr)].label() or "-")))
            shown += len(page.rows)
            cursor = page.next_cursor
            if cursor is None:
                break
        click.echo(f"{overall.flows} flows, {overall.bytes} bytes, {overall.packets} packets"
                   + (f" (first {shown} shown)" if shown < overall.flows else ""))


def _endpoint(address, port, protocol) -> str:
    name = port_name(port, protocol)
    host = f"[{address}]" if ":" in str(address) else str(address)
    return f"{host}:{port}" + (f"({name})" if name else "")


def _table_row(row, zone) -> tuple:
    return (row.ts_start.astimezone(zone).isoformat(timespec="seconds"),
            row.ts_end.astimezone(zone).isoformat(timespec="seconds"),
            _endpoint(row.src_addr, row.src_port, row.protocol), _endpoint(row.dst_addr, row.dst_port, row.protocol),
            protocol_name(row.protocol), row.bytes, row.packets, row.status or "-", row.account or "-",
            row.service or "-")


def _table_line(values) -> str:
    widths = (25, 25, 30, 30, 9, 12, 8, 8, 12, 12, 24, 24)
    return " ".join(str(v).ljust(w) for v, w in zip(values, widths)).rstrip()


@click.command("who")
@click.option("--ip", "address", required=True, help="IPv4 or IPv6 address (public, behind CGNAT).")
@click.option("--port", type=click.IntRange(0, 65535), help="Public port behind CGNAT.")
@click.option("--remote", help="The remote side's address, when known (narrows NAT records).")
@click.option("--at", "moment", required=True, help="ISO 8601 moment (the ISP's time zone unless an offset is given).")
@click.option("--case", "case_ref", required=True, help="Case reference or legal basis (audited).")
@with_appcontext
def who(address, port, remote, moment, case_ref):
    """Which account, service and private address held ADDRESS (and port) at the moment."""
    from ..search.service import lookup

    engine = engine_for(database_url())
    with engine.connect() as conn:
        zone = load(conn).zone
        try:
            address = str(parse_address(address))
            remote = str(parse_address(remote)) if remote else None
            at = parse_moment(moment, zone, "--at")
        except ValueError as exc:
            fail(str(exc))
        if not case_ref.strip():
            fail("--case: a case reference or legal basis is required.")
        holder = lookup(conn, address, at, port, case_ref=case_ref.strip(), actor=actor(), role=CLI_ROLE,
                        remote=remote)
    shown = at.astimezone(zone).isoformat()
    if holder is None:
        click.echo(f"No subscriber held {address} at {shown}.")
        sys.exit(1)
    if holder.ambiguous:
        click.echo(f"{len(holder.candidates)} candidates: {holder.reason}.")
        for candidate in holder.candidates:
            click.echo(_holder_line(candidate))
        return
    click.echo(_holder_line(holder))
    if holder.reason:
        click.echo(f"note: {holder.reason}.")


def _holder_line(holder) -> str:
    line = f"account={holder.account or '-'} service={holder.service or '-'}"
    if holder.behind_nat:
        line += f" private={holder.private_addr}"
        if holder.private_port is not None:
            line += f":{holder.private_port}"
        if holder.port_block:
            line += f" port_block={holder.port_block[0]}-{holder.port_block[1]}"
        if holder.source == "flow":
            line += f" public_port={holder.public_port if holder.public_port is not None else 'not-reported'}"
            line += f" remote={holder.remote or 'several'} source=flow-records"
    if holder.prefix:
        line += f" prefix={holder.prefix}"
    return line


@click.group("audit")
def audit_group():
    """The compliance audit trail."""


@audit_group.command("verify")
@click.option("--manifest", "manifests", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="An export manifest whose audit head to check as well (repeatable).")
@with_appcontext
def audit_verify(manifests):
    """Check the audit log's keyed chain, where it starts, and its anchors (checkpoints, manifests).

    Exit 0 when intact, 1 when entries were changed or removed (each finding on its own line).
    """
    anchors = audit.anchors_of(settings(), manifests)
    with engine_for(database_url()).connect() as conn:
        result = audit.verify(conn, anchors, key=audit.audit_key(settings()))
        warning = audit.unprotected(conn)
    if warning:
        click.echo(f"ispflow: warning: {warning}", err=True)
    if result.ok:
        click.echo(f"Audit log intact: {result.message}")
        return
    for problem in result.problems:
        click.echo(f"Audit log broken ({problem.kind}): {problem.message}", err=True)
    sys.exit(1)


@audit_group.command("checkpoint")
@with_appcontext
def audit_checkpoint():
    """Append the log's head to the checkpoint file under ISPFLOW_STATE_DIR (the periodic job does it hourly)."""
    written = audit.checkpoint_job(settings())
    if written is None:
        click.echo("The audit log is empty: nothing to anchor.")
        return
    click.echo(f"Checkpoint: entry {written['id']} hash {written['hash']} -> {audit.checkpoint_path(settings())}")
