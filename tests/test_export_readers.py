"""A long export is read by two connections in one snapshot; the file is the same as one reader's."""
import io
import ipaddress
from datetime import datetime, timedelta, timezone

import pytest

from ispflow.database import DatabaseError, raw_connection
from ispflow.search.criteria import Criteria
from ispflow.search.export import write_csv
from tests.sample_flows import flow, insert_exporter, insert_flows

DAY0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
SUBSCRIBER = "100.64.3.3"


@pytest.fixture
def week_of_flows(db_engine):
    """Seven days, each with a different number of flows (day 4 has none)."""
    with db_engine.connect() as conn:
        insert_exporter(conn, "192.0.2.1", "edge")
        insert_flows(conn, [flow(DAY0 + timedelta(days=day, minutes=n), SUBSCRIBER, f"198.51.100.{n + 1}",
                                 src_port=40000 + n, account="ACC-7", bytes=1000 * day + n)
                            for day in range(7) if day != 4 for n in range(3 * day + 1)])
        conn.commit()
    return db_engine


def criteria(days: int = 7) -> Criteria:
    return Criteria(start=DAY0, end=DAY0 + timedelta(days=days), case_ref="CASE-1",
                    ip=ipaddress.ip_network(SUBSCRIBER))


def export(url: str, connect=None, progress=None):
    out, conn = io.BytesIO(), raw_connection(url)
    try:
        result = write_csv(conn, criteria(), out, zone_name="Europe/Prague", connect=connect, progress=progress)
        conn.rollback()
    finally:
        conn.close()
    return result, out.getvalue()


def test_two_readers_write_the_same_bytes_in_day_order_as_one(week_of_flows, database_url):
    alone, alone_bytes = export(database_url)
    seen = []
    together, together_bytes = export(database_url, connect=lambda: raw_connection(database_url),
                                      progress=seen.append)
    assert together_bytes == alone_bytes
    assert together == alone
    assert alone.rows == sum(3 * day + 1 for day in range(7) if day != 4)
    lines = alone_bytes.decode("utf-8-sig").splitlines()
    assert lines[0].startswith('connection_type,"account_id"') or lines[0].startswith("connection_type,account_id")
    starts = [line.split(",")[3] for line in lines[1:]]
    assert starts == sorted(starts)   # oldest first across both readers' days
    assert seen and seen[-1] == alone.rows


def test_the_second_reader_sees_the_first_readers_snapshot(week_of_flows, database_url):
    """Flows committed after the export began are in neither reader's days."""
    def connect_after_more_flows_arrive():
        with week_of_flows.connect() as conn:
            insert_flows(conn, [flow(DAY0 + timedelta(days=day, hours=12), SUBSCRIBER, "203.0.113.9")
                                for day in (1, 2)])   # an odd day (second reader) and an even one (first)
            conn.commit()
        return raw_connection(database_url)

    before, _ = export(database_url)
    result, body = export(database_url, connect=connect_after_more_flows_arrive)
    assert result.rows == before.rows
    assert b"203.0.113.9" not in body
    after, _ = export(database_url)
    assert after.rows == before.rows + 2


def test_a_second_reader_that_cannot_connect_fails_the_export(week_of_flows, database_url):
    def unreachable():
        raise DatabaseError("cannot reach PostgreSQL")

    with pytest.raises(DatabaseError, match="cannot reach"):
        export(database_url, connect=unreachable)
