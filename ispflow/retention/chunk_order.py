"""Closed chunks of flows rewritten in subscriber order, so that one subscriber's flows share pages.

Flows arrive in time order, so a busy subscriber's day lies scattered over nearly every page of
its daily chunk, and a search for it visits a page per flow. Once a chunk's day has been over
for ``SETTLE``, only a rare straggler is still added to it; ``CLUSTER`` then rewrites it ordered
by the subscriber-side address and start time, through an index built for that purpose and
dropped afterwards. A subscriber's flows then lie on a few consecutive pages, and the address
btrees, rebuilt in bulk, come out smaller than when they grew row by row.

What it costs:
- While it rewrites a chunk, ``CLUSTER`` holds an exclusive lock on it. For those seconds,
  searches reading that day wait, and so do late flows for it; the collector spools batches
  that wait too long.
- Inside an ordered chunk the BRIN time index no longer narrows anything. Readers that filter
  by time alone (the pages' raw tail, the roll-up job, the hourly security analysis) read
  recent hours, which are never ordered.
- Keyset page cursors carry a row's position: a search paged across the moment its chunk is
  rewritten may repeat or miss rows that share the boundary's exact start time. Exports read
  one snapshot and are not affected.

Rewriting needs the table's owner, like retention. Nothing is added or removed: the chunk
holds the same rows, and ``ordered_chunks`` records each rewrite with its row count.
"""
from __future__ import annotations

import logging
import time as clock
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from ..analytics.rollups import subscriber_address
from ..database import engine_for

log = logging.getLogger(__name__)

SETTLE = timedelta(hours=2)   # after a chunk's range ends, before it is rewritten
BUDGET_S = 3000.0             # one run stops starting chunks after this (the job's timeout is 3600 s)


def closed_unordered_chunks(conn, now: datetime) -> list[tuple[str, str, datetime]]:
    """(schema, name, range start) of the flows' chunks closed for ``SETTLE`` and not yet ordered,
    newest first: recent days are the ones searched most."""
    return [tuple(row) for row in conn.execute(sa.text(
        "select c.chunk_schema, c.chunk_name, c.range_start from timescaledb_information.chunks c "
        "where c.hypertable_schema = 'ispflow' and c.hypertable_name = 'flows' and c.range_end <= :before "
        "and not exists (select 1 from ispflow.ordered_chunks o where o.chunk = c.chunk_schema || '.' || c.chunk_name) "
        "order by c.range_start desc"), {"before": now - SETTLE})]


def order_chunk(conn, schema: str, name: str, range_start: datetime) -> int:
    """Rewrite one chunk in (subscriber address, start time) order and record it; its row count.

    ``conn`` is the owner's, inside a transaction: the index, the rewrite and the record commit
    together or not at all."""
    quote = conn.dialect.identifier_preparer.quote
    chunk = f"{quote(schema)}.{quote(name)}"
    index = quote(f"{name}_subscriber_order")
    began = clock.monotonic()
    conn.execute(sa.text("set local maintenance_work_mem = '512MB'"))
    conn.execute(sa.text(f"create index {index} on {chunk} (({subscriber_address('')}), ts_start)"))
    conn.execute(sa.text(f"cluster {chunk} using {index}"))
    conn.execute(sa.text(f"drop index {quote(schema)}.{index}"))
    conn.execute(sa.text(f"analyze {chunk}"))
    rows = conn.execute(sa.text(f"select count(*) from {chunk}")).scalar()
    conn.execute(sa.text(
        "insert into ispflow.ordered_chunks (chunk, range_start, row_count, seconds) "
        "values (:chunk, :start, :rows, :seconds)"),
        {"chunk": f"{schema}.{name}", "start": range_start, "rows": rows, "seconds": clock.monotonic() - began})
    return rows


def order_closed(engine, now: datetime | None = None, budget_s: float = BUDGET_S) -> list[str]:
    """Order every closed chunk not yet ordered, newest first, one transaction each, until the
    budget is spent; forget the records of chunks retention has dropped. The chunks ordered."""
    now = now or datetime.now(timezone.utc)
    deadline = clock.monotonic() + budget_s
    with engine.begin() as conn:
        conn.execute(sa.text(
            "delete from ispflow.ordered_chunks o where to_regclass(o.chunk) is null"))
        pending = closed_unordered_chunks(conn, now)
    done = []
    for schema, name, range_start in pending:
        if clock.monotonic() >= deadline:
            break
        with engine.begin() as conn:
            rows = order_chunk(conn, schema, name, range_start)
        log.info("chunk order: %s.%s rewritten in subscriber order (%d rows)", schema, name, rows)
        done.append(f"{schema}.{name}")
    return done


def order_closed_chunks(settings=None, now: datetime | None = None) -> str:
    """The hourly job: order the chunks that have closed since the last run."""
    from ..jobs import job_settings

    settings = settings or job_settings()
    if not settings.CHUNK_ORDER:
        return "chunk order is off (ISPFLOW_CHUNK_ORDER)"
    # CLUSTER is the table owner's to run, as drop_chunks is for retention.
    done = order_closed(engine_for(settings.owner_database_url), now)
    return f"ordered {len(done)} chunk(s)" if done else "no closed chunk to order"
