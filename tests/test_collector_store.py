"""Decoded flows are stored exactly as decoded, attributed to the subscriber of the moment."""
from datetime import datetime

import numpy as np
import pytest
import sqlalchemy as sa

from ispflow.collector.attribution import SubscriberDirectory
from ispflow.collector.enrich import enrich
from ispflow.collector.holders import Holders
from ispflow.collector.writer import copy_flows, encode
from ispflow.database import raw_connection
from ispflow.subscribers import Assignment, save_assignments

from .collector_helpers import flow_batch

T0 = datetime.fromisoformat("2026-03-01T12:00:00+00:00")


def directory(*rows, own=()):
    return SubscriberDirectory(
        [(r.account, r.service, r.prefix, r.valid_from, r.valid_to) for r in rows], own_prefixes=own)


def store(database_url, enriched, exporter_id=7):
    conn = raw_connection(database_url)
    try:
        copy_flows(conn, encode(enriched, np.array([exporter_id]), Holders().ids(conn, enriched.subscribers)))
        conn.commit()
    finally:
        conn.close()


def stored(db_engine, order="ts_start, src_addr"):
    with db_engine.connect() as conn:
        return conn.execute(sa.text(f"select * from ispflow.flow_records order by {order}")).mappings().all()


OLD = Assignment.parse("ACC-OLD", "dsl", "203.0.113.10", "2026-01-01T00:00:00Z", "2026-03-01T12:00:00Z")
NEW = Assignment.parse("ACC-NEW", "fiber", "203.0.113.10", "2026-03-01T12:00:00Z")
POOL = Assignment.parse("ACC-POOL", "cgnat", "203.0.113.0/24", "2025-01-01T00:00:00Z")
V6 = Assignment.parse("ACC-V6", "fiber", "2001:db8:10::/56", "2025-01-01T00:00:00Z")


def test_every_column_round_trips(database_url, db_engine):
    batch = flow_batch([
        dict(src="203.0.113.10", dst="198.51.100.1", start="2026-03-01T11:00:00.123456Z",
             end="2026-03-01T11:00:05Z", src_port=51000, dst_port=443, protocol=6, tcp_flags=0x1B,
             bytes=123456789012, packets=99, in_if=3, out_if=4, src_as=64500, dst_as=15169),
    ])
    store(database_url, enrich(batch, directory(OLD)))
    row = stored(db_engine)[0]
    assert row["ts_start"].isoformat() == "2026-03-01T11:00:00.123456+00:00"
    assert row["ts_end"].isoformat() == "2026-03-01T11:00:05+00:00"
    assert (row["exporter_id"], row["src_addr"], row["dst_addr"]) == (7, "203.0.113.10", "198.51.100.1")
    assert (row["src_port"], row["dst_port"], row["protocol"], row["tcp_flags"]) == (51000, 443, 6, 0x1B)
    assert (row["bytes"], row["packets"], row["in_if"], row["out_if"]) == (123456789012, 99, 3, 4)
    assert (row["src_as"], row["dst_as"], row["sampling_rate"]) == (64500, 15169, 1)
    assert (row["account"], row["service"], row["direction"], row["status"]) == ("ACC-OLD", "dsl", "out", "success")


def test_absent_optional_fields_are_null(database_url, db_engine):
    store(database_url, enrich(flow_batch([dict(src="192.0.2.5", dst="192.0.2.6", start="2026-03-01T00:00:00Z",
                                                 protocol=17)]), directory()))
    row = stored(db_engine)[0]
    assert [row[c] for c in ("tcp_flags", "in_if", "out_if", "src_as", "dst_as", "account", "service",
                             "direction", "status")] == [None] * 9


def test_the_account_is_the_one_holding_the_address_at_flow_start(database_url, db_engine):
    batch = flow_batch([
        dict(src="198.51.100.1", dst="203.0.113.10", start="2026-03-01T11:59:59Z"),
        dict(src="198.51.100.1", dst="203.0.113.10", start="2026-03-01T12:00:00Z"),
        dict(src="203.0.113.77", dst="198.51.100.1", start="2026-03-01T12:00:00Z"),
    ])
    store(database_url, enrich(batch, directory(OLD, NEW, POOL)))
    rows = stored(db_engine, "ts_start, direction")
    assert [(r["account"], r["direction"]) for r in rows] == [
        ("ACC-OLD", "in"), ("ACC-NEW", "in"), ("ACC-POOL", "out")]


def test_ipv6_flows_are_stored_and_attributed(database_url, db_engine):
    batch = flow_batch([
        dict(src="2001:db8:10::42", dst="2a00:1450:4001::200e", start="2026-03-01T10:00:00Z"),
        dict(src="198.51.100.1", dst="203.0.113.10", start="2026-03-01T10:00:00Z"),
    ])
    store(database_url, enrich(batch, directory(V6, OLD)))  # both families in one batch
    rows = {r["src_addr"]: r for r in stored(db_engine)}
    assert rows["2001:db8:10::42"]["account"] == "ACC-V6"
    assert rows["2001:db8:10::42"]["dst_addr"] == "2a00:1450:4001::200e"
    assert rows["198.51.100.1"]["account"] == "ACC-OLD"


def test_own_prefixes_give_a_direction_without_an_account(database_url, db_engine):
    batch = flow_batch([dict(src="198.51.100.1", dst="100.64.3.3", start="2026-03-01T10:00:00Z")])
    store(database_url, enrich(batch, directory(own=("100.64.0.0/10",))))
    row = stored(db_engine)[0]
    assert (row["account"], row["direction"]) == (None, "in")


def test_sampled_counters_are_scaled_and_the_rate_kept(database_url, db_engine):
    batch = flow_batch([dict(src="192.0.2.5", dst="192.0.2.6", start="2026-03-01T00:00:00Z",
                             bytes=1500, packets=1, sampling_rate=512)])
    store(database_url, enrich(batch, directory()))
    row = stored(db_engine)[0]
    assert (row["bytes"], row["packets"], row["sampling_rate"]) == (1500 * 512, 512, 512)
    assert row["bytes"] // row["sampling_rate"] == 1500  # the raw count stays derivable


STATUS_RULE = [  # (protocol, flags or -1 for none exported, the status a search shows)
    (6, 0x02, "failure"),     # SYN nobody answered
    (6, 0x04, "failure"),     # bare RST
    (6, 0x14, "failure"),     # RST+ACK: connection refused
    (6, 0x114, "failure"),    # the same with an ECN bit above the eight flags
    (6, 0x12, "success"),     # SYN+ACK
    (6, 0x1B, "success"),     # a whole conversation
    (6, 0x1F, "success"),     # ended by a reset after data
    (6, -1, None),            # the exporter sends no flags
    (17, 0x02, None),         # not TCP
]


def test_tcp_connection_status_is_derived_from_the_stored_flags(database_url, db_engine):
    flows = [dict(src="192.0.2.5", dst="192.0.2.6", start="2026-03-01T00:00:00Z", bytes=i, packets=1,
                  protocol=protocol, tcp_flags=flags) for i, (protocol, flags, _) in enumerate(STATUS_RULE)]
    store(database_url, enrich(flow_batch(flows), directory()))
    with db_engine.connect() as conn:
        got = conn.execute(sa.text("select status from ispflow.flow_records order by bytes")).scalars().all()
    assert got == [status for *_, status in STATUS_RULE]


def test_directory_loads_from_the_database(db_engine):
    with db_engine.begin() as conn:
        from sqlalchemy.orm import Session

        with Session(bind=conn) as session:
            save_assignments(session, [OLD, NEW, V6])
            session.flush()
        loaded = SubscriberDirectory.load(conn)
    assert len(loaded) == 3


def test_a_large_mixed_batch_keeps_every_row(database_url, db_engine):
    flows = []
    for i in range(5000):
        flows.append(dict(src=f"203.0.113.{i % 256}", dst=f"2001:db8::{i:x}" if i % 7 == 0 else f"198.51.{i % 200}.{i % 250}",
                          start=f"2026-03-01T{i % 24:02d}:00:00Z", tcp_flags=(-1 if i % 5 == 0 else 0x12),
                          in_if=(-1 if i % 3 else i), bytes=i, packets=1))
    for f in flows:
        if ":" in f["dst"]:
            f["src"] = "2001:db8:10::1"
    store(database_url, enrich(flow_batch(flows), directory(OLD, NEW, POOL, V6)))
    with db_engine.connect() as conn:
        count, total = conn.execute(sa.text("select count(*), sum(bytes) from ispflow.flows")).one()
    assert count == 5000
    assert total == sum(range(5000))


def test_accounts_services_directions_and_statuses_of_many_subscribers_are_stored_per_flow(database_url, db_engine):
    """Names of every length (UTF-8 counted in bytes), both directions, each status, and flows
    of no subscriber, mixed in one batch."""
    rows = [Assignment.parse(f"Účet-{'ž' * (i % 5)}{i}", "fibre" if i % 2 else "dsl", f"203.0.113.{i}",
                             "2025-01-01T00:00:00Z") for i in range(1, 60)]
    flows, expected = [], []
    for i in range(600):
        k = i % 61   # 60 and 0 are no subscriber's
        inbound = i % 3 == 0
        subscriber, remote = f"203.0.113.{k}", f"198.51.100.{i % 250}"
        flows.append(dict(src=remote if inbound else subscriber, dst=subscriber if inbound else remote,
                          start="2026-03-01T10:00:00Z", bytes=i, packets=1, protocol=6 if i % 4 else 17,
                          tcp_flags=(0x02 if i % 8 == 1 else 0x12)))
        held = 1 <= k < 60
        status = None if i % 4 == 0 else ("failure" if i % 8 == 1 else "success")
        expected.append((i, rows[k - 1].account if held else None, rows[k - 1].service if held else None,
                         ("in" if inbound else "out") if held else None, status))
    store(database_url, enrich(flow_batch(flows), directory(*rows)))
    with db_engine.connect() as conn:
        got = conn.execute(sa.text("select bytes, account, service, direction, status from ispflow.flow_records "
                                   "order by bytes")).all()
    assert [tuple(r) for r in got] == expected
