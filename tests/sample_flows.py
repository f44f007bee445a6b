"""Realistic flow and NAT rows written straight into the tables, for tests and the benchmarks.

The collector is the real source of these rows; searches only need them to exist, so this
writes them with one COPY per call (values travel as CSV data, never as SQL). The columns are
those of ``ispflow.tables``; a row leaves out what it does not set (NULL or the default). A flow
row names its subscriber by ``account`` and ``service``, as ``flow_records`` shows them; they
are stored as the collector stores them, as a key into ``holders``. Its TCP status follows from
its protocol and flags.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

from ispflow import tables


def flow(ts_start: datetime | str, src: str = "100.64.0.10", dst: str = "93.184.216.34", *,
         seconds: float = 2.0, **fields) -> dict:
    """One flow row: a subscriber's HTTPS connection unless told otherwise."""
    if isinstance(ts_start, str):
        ts_start = datetime.fromisoformat(ts_start.replace("Z", "+00:00"))
    row = {"ts_start": ts_start, "ts_end": ts_start + timedelta(seconds=seconds), "exporter_id": 1,
           "src_addr": src, "dst_addr": dst, "src_port": 51000, "dst_port": 443, "protocol": 6,
           "tcp_flags": 27, "bytes": 4200, "packets": 12, "in_if": 2, "out_if": 1, "sampling_rate": 1,
           "account": None, "service": None, "direction": "out"}
    _known(tables.flows, fields, extra=("account", "service"))
    row.update(fields)
    return row


def nat_event(ts: datetime | str, private: str, public: str, **fields) -> dict:
    """One NAT44 session-create event (natEvent 4) unless told otherwise."""
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    row = {"ts": ts, "ts_end": None, "exporter_id": 1, "event": 4, "protocol": 6, "private_addr": private,
           "private_port": 40000, "public_addr": public, "public_port": None, "port_block_start": None,
           "port_block_end": None, "dst_addr": None, "dst_port": None, "account": None, "service": None}
    _known(tables.nat_events, fields)
    row.update(fields)
    return row


def _known(table, fields, extra=()) -> None:
    unknown = set(fields) - set(tables.names(table)) - set(extra)
    if unknown:
        raise TypeError(f"unknown {table.name} columns {sorted(unknown)}")


def _copy(dbapi_conn, table: str, rows) -> int:
    rows = list(rows)
    given = set().union(*rows) if rows else set()
    columns = [name for name in tables.names(getattr(tables, table)) if name in given]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    count = 0
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _text(row[c]) for c in columns])
        count += 1
    buffer.seek(0)
    with dbapi_conn.cursor() as cursor:
        cursor.copy_expert(f"copy ispflow.{table} ({', '.join(columns)}) from stdin with (format csv)", buffer)
    return count


def _text(value) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _dbapi(conn):
    """The psycopg2 connection behind a SQLAlchemy Connection (or a psycopg2 connection).

    A SQLAlchemy transaction is begun first so that the caller's ``commit()`` commits the rows.
    """
    if not hasattr(conn, "exec_driver_sql"):
        return conn
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.dbapi_connection


def insert_flows(conn, rows) -> int:
    """COPY flow rows (dicts from ``flow``) in the caller's transaction; returns how many."""
    dbapi = _dbapi(conn)
    rows = list(rows)
    holders = _holders(dbapi, {(r["account"], r.get("service")) for r in rows if r.get("account") is not None})
    stored = []
    for row in rows:
        row = dict(row)
        pair = (row.pop("account", None), row.pop("service", None))
        if pair[0] is not None:
            row["holder"] = holders[pair]
        stored.append(row)
    return _copy(dbapi, "flows", stored)


def _holders(dbapi_conn, pairs) -> dict:
    """{(account, service): holders.id}, adding the pairs not there yet."""
    if not pairs:
        return {}
    accounts, services = zip(*pairs)
    with dbapi_conn.cursor() as cursor:
        cursor.execute("insert into ispflow.holders (account, service) select * from unnest(%s::text[], %s::text[]) "
                       "on conflict do nothing", (list(accounts), list(services)))
        cursor.execute("select id, account, service from ispflow.holders")
        return {(account, service): id_ for id_, account, service in cursor.fetchall()}


def insert_nat_events(conn, rows) -> int:
    return _copy(_dbapi(conn), "nat_events", rows)


def insert_exporter(conn, address: str = "192.0.2.1", name: str | None = "edge-1") -> int:
    with _dbapi(conn).cursor() as cursor:
        cursor.execute("insert into ispflow.exporters (address, name) values (%s, %s) returning id", (address, name))
        return cursor.fetchone()[0]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
