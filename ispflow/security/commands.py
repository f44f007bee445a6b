"""``ispflow findings``: the security view on the command line."""
from __future__ import annotations

import csv
import json
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from ..config import Settings
from ..database import engine_for
from ..geoip import geoip
from ..module_settings import load
from ..search.criteria import parse_moment
from ..search.export import neutralised_cell
from .detect import KIND_LABELS, KINDS
from .findings import analyse_period, coverage, grouped_findings

COLUMNS = ("kind", "score", "subject", "subject_origin", "peer", "peer_origin", "port", "account", "hours",
           "first_seen", "last_seen", "summary")


@click.command("findings")
@click.option("--from", "start", required=True, help="Start, ISO 8601 (the ISP's time zone unless an offset is given).")
@click.option("--to", "end", required=True, help="End (exclusive); a bare date includes that day.")
@click.option("--kind", type=click.Choice(KINDS), help="Only findings of this kind.")
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--analyse/--no-analyse", default=True, show_default=True,
              help="First analyse the settled hours of the period that the periodic job has not analysed.")
@click.option("--limit", type=click.IntRange(1), default=500, show_default=True)
@with_appcontext
def findings(start, end, kind, output, analyse, limit):
    """Security findings of a period, highest score first."""
    from ..cli import fail

    settings = Settings.from_flask(current_app.config)
    engine = engine_for(settings.DATABASE_URL)
    with engine.connect() as conn:
        zone = load(conn).zone
    try:
        since = parse_moment(start, zone, "--from")
        until = parse_moment(end, zone, "--to", end_of_day=True)
    except ValueError as exc:
        fail(str(exc))
    if until <= since:
        fail("--to must be later than --from.")
    geo = geoip(settings)
    if analyse:
        count = analyse_period(engine, since, until, geo)
        if count:
            click.echo(f"Analysed {count} hour(s).", err=True)
    with engine.connect() as conn:
        rows = grouped_findings(conn, since, until, kind, limit)
        done, settled = coverage(conn, since, until)
    records = [_record(r, zone, geo) for r in rows]
    if output == "json":
        json.dump({"from": since.isoformat(), "to": until.isoformat(), "hours_analysed": done,
                   "hours_settled": settled, "findings": records}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif output == "csv":
        writer = csv.DictWriter(sys.stdout, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        # Account names and GeoIP AS names are text others chose: no cell may run as a formula.
        writer.writerows({key: neutralised_cell(value) for key, value in record.items()} for record in records)
    else:
        for r in records:
            click.echo(f"{r['score']:>8.1f}  {KIND_LABELS[r['kind']]:<24} {r['subject']:<18} {r['hours']:>3} h  "
                       f"{r['summary']}" + "".join(f" [{r[k]}]" for k in ("subject_origin", "peer_origin") if r[k]))
        click.echo(f"{len(records)} finding(s); {done} of {settled} settled hour(s) analysed.")


def _record(row, zone, geo) -> dict:
    return {"kind": row.kind, "score": round(float(row.score), 2), "subject": str(row.subject),
            "subject_origin": geo.lookup(row.subject).label(),
            "peer": str(row.peer) if row.peer is not None else "",
            "peer_origin": geo.lookup(row.peer).label() if row.peer is not None else "",
            "port": row.port if row.port is not None else "", "account": row.account or "", "hours": row.hours,
            "first_seen": row.first_seen.astimezone(zone).isoformat(),
            "last_seen": row.last_seen.astimezone(zone).isoformat(), "summary": row.summary,
            "evidence": row.evidence}
