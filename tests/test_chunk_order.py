"""Closed chunks are rewritten in subscriber order: same rows, same answers, one subscriber's flows together."""
import ipaddress
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ispflow.config import Settings
from ispflow.jobs import PERIODIC_JOBS
from ispflow.retention.chunk_order import SETTLE, order_closed, order_closed_chunks
from ispflow.search import query
from ispflow.search.criteria import Criteria
from tests.sample_flows import flow, insert_flows

DAY = datetime(2026, 3, 2, tzinfo=timezone.utc)
SUBSCRIBERS = [f"100.64.9.{n}" for n in range(1, 7)]
REMOTE = "198.51.100.7"


@pytest.fixture
def interleaved(db_engine):
    """Two days of six subscribers' flows, in both directions, arriving in time order (so every
    subscriber's flows alternate with the others' on disk)."""
    rows = []
    for day in (DAY, DAY + timedelta(days=1)):
        for i in range(600):
            subscriber, moment = SUBSCRIBERS[i % 6], day + timedelta(seconds=60 * i)
            if i % 3:
                rows.append(flow(moment, subscriber, REMOTE, src_port=40000 + i, direction="out", account=f"A{i % 6}"))
            else:
                rows.append(flow(moment, REMOTE, subscriber, dst_port=40000 + i, direction="in", account=f"A{i % 6}"))
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
    return db_engine


def chunks(engine) -> dict[datetime, str]:
    with engine.connect() as conn:
        return {row.range_start: f"{row.chunk_schema}.{row.chunk_name}" for row in conn.execute(sa.text(
            "select chunk_schema, chunk_name, range_start from timescaledb_information.chunks "
            "where hypertable_schema = 'ispflow' and hypertable_name = 'flows'"))}


def physical_runs(engine, chunk: str) -> int:
    """How many runs of one subscriber the chunk's rows form in physical order (6 when grouped)."""
    with engine.connect() as conn:
        sides = conn.execute(sa.text(
            f"select case direction when 'in' then dst_addr else src_addr end from {chunk} order by ctid")).scalars().all()
    return 1 + sum(1 for a, b in zip(sides, sides[1:]) if a != b)


def answers(engine) -> list:
    """What searches return: each subscriber's rows and totals, the /24, the remote side."""
    out = []
    with engine.connect() as conn:
        for ip in SUBSCRIBERS[:2] + ["100.64.9.0/24", REMOTE]:
            criteria = Criteria(start=DAY, end=DAY + timedelta(days=2), case_ref="C", ip=ipaddress.ip_network(ip))
            rows = query.all_rows(conn, criteria)
            out.append(([(r.ts_start, r.src_addr, r.dst_addr, r.src_port, r.dst_port, r.bytes) for r in rows],
                        query.totals(conn, criteria)))
    return out


def test_a_closed_chunk_is_rewritten_with_each_subscribers_flows_together(interleaved, owner_engine):
    before = answers(interleaved)
    first, second = (chunks(interleaved)[d] for d in (DAY, DAY + timedelta(days=1)))
    assert physical_runs(interleaved, first) == 600

    # The second day closed less than SETTLE ago: only the first is rewritten.
    now = DAY + timedelta(days=2) + SETTLE - timedelta(minutes=1)
    assert order_closed(owner_engine, now) == [first]

    assert physical_runs(interleaved, first) == 6
    assert physical_runs(interleaved, second) == 600
    assert answers(interleaved) == before
    with interleaved.connect() as conn:
        record = conn.execute(sa.text("select chunk, range_start, row_count from ispflow.ordered_chunks")).one()
    assert tuple(record) == (first, DAY, 600)


def test_each_chunk_is_rewritten_once(interleaved, owner_engine):
    now = DAY + timedelta(days=3)
    assert len(order_closed(owner_engine, now)) == 2
    assert order_closed(owner_engine, now) == []


def test_the_record_of_a_chunk_retention_dropped_is_forgotten(interleaved, owner_engine):
    order_closed(owner_engine, DAY + timedelta(days=3))
    with owner_engine.begin() as conn:
        conn.execute(sa.text("select drop_chunks('ispflow.flows', older_than => :t)"), {"t": DAY + timedelta(days=1)})
    order_closed(owner_engine, DAY + timedelta(days=3))
    with owner_engine.connect() as conn:
        assert conn.execute(sa.text("select range_start from ispflow.ordered_chunks")).scalars().all() == [
            DAY + timedelta(days=1)]


def test_the_app_role_can_neither_rewrite_chunks_nor_forge_the_record(interleaved):
    with pytest.raises(sa.exc.ProgrammingError, match="must be owner|permission denied"):
        order_closed(interleaved, DAY + timedelta(days=3))
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        with interleaved.begin() as conn:
            conn.execute(sa.text("insert into ispflow.ordered_chunks (chunk, range_start, row_count, seconds) "
                                 "values ('x', now(), 0, 0)"))


def test_the_hourly_job_connects_as_the_owner(interleaved, database_url, owner_database_url, redis_url, tmp_path):
    settings = Settings(DATABASE_URL=database_url, OWNER_DATABASE_URL=owner_database_url, REDIS_URL=redis_url,
                        EXPORT_DIR=str(tmp_path / "exports"), SPOOL_DIR=str(tmp_path / "spool"))
    assert order_closed_chunks(settings, now=DAY + timedelta(days=3)) == "ordered 2 chunk(s)"
    assert order_closed_chunks(settings, now=DAY + timedelta(days=3)) == "no closed chunk to order"
    assert any(job.function == "ispflow.retention.chunk_order:order_closed_chunks" for job in PERIODIC_JOBS)


def test_the_job_can_be_turned_off(interleaved, database_url, owner_database_url, redis_url, tmp_path):
    settings = Settings(DATABASE_URL=database_url, OWNER_DATABASE_URL=owner_database_url, REDIS_URL=redis_url,
                        EXPORT_DIR=str(tmp_path / "exports"), SPOOL_DIR=str(tmp_path / "spool"), CHUNK_ORDER=False)
    assert order_closed_chunks(settings, now=DAY + timedelta(days=3)) == "chunk order is off (ISPFLOW_CHUNK_ORDER)"
    with interleaved.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ispflow.ordered_chunks")).scalar() == 0
