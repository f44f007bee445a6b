"""Roll-ups: the flows summed per 5-minute and per hour bucket.

Who writes them: the collector (``collector.rollup_keeper``), from the flows it stored, with
``columnar``'s numpy twin of ``build``; this module's ``rollups`` job (every 5 minutes) checks
each settled hour and rebuilds from the raw flows what the collector did not write. An hour
is checked by counting: its raw flows against the flows its roll-ups hold. Equal counts mean
every stored flow of the hour was rolled up once (a collector only adds after its flows are
committed, and writes a flow's roll-ups at most once), so the check costs a count, not a
roll-up. A different count (a collector crashed with an hour in memory, its roll-ups are off,
flows came from elsewhere) rebuilds the hour, and the next one too, whose first buckets hold
the lost hour's long flows. The job takes ``WRITE_LOCK`` exclusively while it checks and
rebuilds, collectors share it while they write: a rebuild never meets half of a collector's
write.

Late flows: a collector keeps an hour in memory until ``GRACE`` after it ends and adds flows
that arrive later to the roll-ups in the same transaction that stores them. The job checks an
hour once it has been closed for ``SETTLE`` and checks the previous hour (``REVISIT``) again
in its next run. Stragglers older than that (a spool replayed after a long database outage)
are added by ``ispflow report rebuild --from --to``.

How a flow becomes bucket rows (the 5-minute tables): its bytes and packets are spread over
the buckets its ``[ts_start, ts_end]`` overlaps in proportion to the time spent in each,
rounded so that the pieces add up to the flow's counts exactly (the running floor of the
cumulative share); a flow with no duration lies in the bucket of its start; a flow longer
than ``MAX_SPAN`` (exporters' active timeouts are at most 30 minutes, so only a wrong clock
gives one) is spread over its first ``MAX_SPAN``. It counts as one flow in the bucket it
starts in. The hourly top tables count a whole flow in the hour it started.

Talkers: per hour the heaviest ``TOP_NETWORK`` (whole network) and ``TOP_ACCOUNT`` (each
account) by bytes and by flows, ties broken by address, and one remainder row. An account-hour
of at most ``SHALLOW`` flows keeps only its talkers' remainder rows, flagged ``raw``, and no
application rows of its own: its reports are read from its raw flows, which are fewer than
those rows would be (on a network of many light subscribers the per-account tables otherwise
held more rows than there were flows).
"""
from __future__ import annotations

import logging
import time as clock
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from ..database import without_jit

log = logging.getLogger(__name__)

STEP = timedelta(minutes=5)
HOUR = timedelta(hours=1)
MAX_SPAN = timedelta(hours=1)
SETTLE = timedelta(minutes=10)
REVISIT = timedelta(hours=1)
UNIT = timedelta(hours=24)  # the most one transaction rolls up (catching up after downtime)
WATERMARK = "rollups"
TOP_NETWORK = 100   # talkers kept per hour for the whole network, by bytes and by flows
TOP_ACCOUNT = 25    # talkers kept per hour for each account, likewise
SHALLOW = 3 * (2 * TOP_ACCOUNT + 1)   # an account-hour's most talker rows: fewer flows are read raw
GRACE = timedelta(minutes=5)          # a collector writes an hour's roll-ups this long after it ends
_LOCK = 0x15F12B    # advisory lock: one roll-up run at a time
WRITE_LOCK = 0x15F12C   # shared by collectors adding roll-ups, exclusive while the job checks an hour
REBUILD_UNTIL = "rollups-rebuild-until"   # hours before this are rebuilt even if their counts agree
SUM = "ispflow.sum_bigint"   # sum(bigint) in a bigint state (migration analytics_bigint_sums)

ROLLUP_TABLES = ("rollup_traffic_5m", "rollup_prefix_5m", "rollup_network_5m", "rollup_interface_5m",
                 "rollup_accounts_1h", "rollup_apps_1h", "rollup_talkers_1h", "rollup_account_talkers_1h")

# The block a subscriber-side address is summed into in rollup_prefix_5m: /24 or /48.
PREFIX_BITS = {4: 24, 6: 48}
_PREFIX_OF_ADDRESS = "network(set_masklen(address, case family(address) when 4 then 24 else 48 end))"

def subscriber_address(alias: str = "f") -> str:
    """SQL of the side of a flow that is the subscriber's: the destination of inbound traffic,
    the source of outbound (null when unattributed). ``alias`` is the flows table's ("": none)."""
    prefix = f"{alias}." if alias else ""
    return f"case {prefix}direction when 'in' then {prefix}dst_addr when 'out' then {prefix}src_addr end"


SUBSCRIBER_ADDRESS = subscriber_address("f")

# The service port of a flow: the lower of its two ports when one is below the dynamic
# range (49152), else 0; protocols without ports get 0.
SERVICE_PORT = ("case when f.protocol not in (6, 17, 132) then 0 "
                "when least(nullif(f.src_port, 0), nullif(f.dst_port, 0)) < 49152 "
                "then least(nullif(f.src_port, 0), nullif(f.dst_port, 0)) else 0 end")


def floor_time(moment: datetime, step: timedelta) -> datetime:
    """The start of the ``step``-long bucket holding ``moment`` (buckets counted from the epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return epoch + ((moment - epoch) // step) * step


def for_aggregates(conn, work_mem_mb: int = 32) -> None:
    """Settings for the rest of the transaction that suit these aggregates.

    JIT off (``without_jit``: its compilation costs more than these queries save). More
    ``work_mem`` than the 4 MB default, so a month's or a day's groups are hashed and sorted in
    memory instead of spilling to disk.
    """
    without_jit(conn)
    conn.exec_driver_sql(f"set local work_mem = '{int(work_mem_mb)}MB'")


def fetch_all(conn, sql: str, params: dict) -> list[tuple]:
    """Rows as plain tuples straight from psycopg2: several times faster than row objects for
    the thousands of buckets a month has."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall()
    finally:
        cursor.close()


def split_sql(source: str, step: str, dimensions: str = "") -> str:
    """SQL of the pieces of the flows selected by ``source``, one per bucket they overlap.

    ``source`` is a query yielding ``ts_start, ts_end, bytes, packets`` and the columns named
    in ``dimensions`` (comma-separated, may be empty); ``step`` is a bound parameter holding
    the bucket width. The result has ``bucket``, the dimensions, and the ``bytes``,
    ``packets`` and ``flows`` of each piece (not yet grouped).
    """
    extra = f", {dimensions}" if dimensions else ""
    # g(t) = floor(count * (t - start) / duration) in microseconds; a piece is g(end) - g(start),
    # so the pieces of one flow telescope to exactly its count. In bigint while the product
    # cannot overflow (count < 2^31, elapsed ≤ MAX_SPAN), else in numeric; the same value.
    def share(column: str, at: str) -> str:
        elapsed = f"round(date_part('epoch', {at} - s.ts_start) * 1000000)::bigint"
        return (f"case when s.{column} < 2147483648 then s.{column} * {elapsed} / s.span_us "
                f"else div(s.{column}::numeric * {elapsed}, s.span_us)::bigint end")
    return f"""
        select b.bucket{extra},
               case when s.first_bucket = s.last_bucket then s.bytes
                    else ({share('bytes', f'least(s.te, b.bucket + {step})')}
                          - {share('bytes', 'greatest(s.ts_start, b.bucket)')})::bigint end as bytes,
               case when s.first_bucket = s.last_bucket then s.packets
                    else ({share('packets', f'least(s.te, b.bucket + {step})')}
                          - {share('packets', 'greatest(s.ts_start, b.bucket)')})::bigint end as packets,
               (b.bucket = s.first_bucket)::int::bigint as flows
        from (
            select r.*, time_bucket({step}, r.ts_start) as first_bucket,
                   time_bucket({step}, greatest(r.ts_start, r.te - interval '1 microsecond')) as last_bucket,
                   greatest(round(date_part('epoch', r.te - r.ts_start) * 1000000)::bigint, 1) as span_us
            from (select q.*, greatest(q.ts_start, least(q.ts_end, q.ts_start + interval '{int(MAX_SPAN.total_seconds())} seconds')) as te
                  from ({source}) q) r
        ) s
        cross join lateral generate_series(s.first_bucket, s.last_bucket, {step}) as b(bucket)
    """


def _flows_window(dimensions: str) -> str:
    return (f"select f.ts_start, f.ts_end, f.bytes, f.packets, {dimensions} from ispflow.flow_records f "
            f"where f.ts_start >= cast(%(source_from)s as timestamptz) and f.ts_start < %(until)s")


def build(conn, start: datetime, end: datetime) -> None:
    """Recompute every roll-up bucket in ``[start, end)`` (whole hours) from the raw flows.

    ``conn`` is a SQLAlchemy connection inside a transaction; the caller commits.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("roll-up bounds must be aware datetimes")
    if floor_time(start, HOUR) != start or floor_time(end, HOUR) != end:
        raise ValueError("roll-ups are built for whole hours")
    params = {"from": start, "until": end, "source_from": start - MAX_SPAN, "step": STEP}
    run = conn.exec_driver_sql
    for_aggregates(conn, 256)
    for table in ROLLUP_TABLES:
        run(f"delete from ispflow.{table} where bucket >= %(from)s and bucket < %(until)s", params)
    run("drop table if exists pg_temp.rollup_cells")
    source = _flows_window(f"{SUBSCRIBER_ADDRESS} as address, f.account, f.service, f.direction, "
                           "f.exporter_id, f.in_if, f.out_if")
    # The flows' pieces summed per bucket and finest key: every 5-minute table regroups these
    # cells (a few per address and bucket) instead of one piece per flow.
    run(f"""create temporary table rollup_cells on commit drop as
            select bucket, address, account, service, direction, exporter_id, in_if, out_if,
                   {SUM}(bytes) as bytes, {SUM}(packets) as packets, {SUM}(flows) as flows
            from ({split_sql(source, '%(step)s', 'address, account, service, direction, exporter_id, in_if, out_if')}) p
            where p.bucket >= %(from)s and p.bucket < %(until)s
            group by 1, 2, 3, 4, 5, 6, 7, 8""", params)
    totals = f"{SUM}(bytes), {SUM}(packets), {SUM}(flows)"
    run(f"""insert into ispflow.rollup_traffic_5m
            select bucket, address, account, service, direction, {totals}
            from rollup_cells where direction is not null group by 1, 2, 3, 4, 5
            order by address, bucket""")   # in index order: half the time of random inserts
    run(f"""insert into ispflow.rollup_prefix_5m
            select bucket, {_PREFIX_OF_ADDRESS}, direction, {totals}
            from ispflow.rollup_traffic_5m where bucket >= %(from)s and bucket < %(until)s group by 1, 2, 3""",
        params)
    run(f"""insert into ispflow.rollup_network_5m
            select bucket, service, direction, {totals} from rollup_cells group by 1, 2, 3""")
    run(f"""insert into ispflow.rollup_interface_5m
            select bucket, exporter_id, if_index, direction, {totals} from (
                select bucket, exporter_id, in_if as if_index, 'in' as direction, bytes, packets, flows
                from rollup_cells where in_if is not null
                union all
                select bucket, exporter_id, out_if, 'out', bytes, packets, flows
                from rollup_cells where out_if is not null) i
            group by 1, 2, 3, 4""")
    run(f"""insert into ispflow.rollup_accounts_1h
            select time_bucket('1 hour', bucket), account, service, direction, {totals}
            from rollup_cells where account is not null and direction is not null group by 1, 2, 3, 4""")
    _build_hourly(run, params)


def _build_hourly(run, params) -> None:
    started = "f.ts_start >= %(from)s and f.ts_start < %(until)s"
    run("drop table if exists pg_temp.rollup_apps")
    run(f"""create temporary table rollup_apps on commit drop as
            select time_bucket('1 hour', f.ts_start) as bucket, f.account, f.protocol, {SERVICE_PORT} as port,
                   {SUM}(f.bytes) as bytes, {SUM}(f.packets) as packets, count(*) as flows
            from ispflow.flow_records f where {started} group by 1, 2, 3, 4""", params)
    # The account-hours with more than SHALLOW flows: only they get rows per account (talkers,
    # applications); the others get a raw marker among their talkers and are read raw.
    run("drop table if exists pg_temp.rollup_deep")
    run(f"""create temporary table rollup_deep on commit drop as select bucket, account from rollup_apps
            where account is not null group by bucket, account having {SUM}(flows) > {SHALLOW}""")
    run(f"""insert into ispflow.rollup_apps_1h
            select bucket, account, protocol, port, bytes, packets, flows from rollup_apps join rollup_deep
            using (bucket, account)
            union all
            select bucket, null, protocol, port, {SUM}(bytes), {SUM}(packets), {SUM}(flows) from rollup_apps
            group by bucket, protocol, port""")
    run("drop table if exists pg_temp.rollup_pairs")
    run(f"""create temporary table rollup_pairs on commit drop as
            select time_bucket('1 hour', f.ts_start) as bucket, f.account, f.src_addr, f.dst_addr,
                   {SUM}(f.bytes) as bytes, {SUM}(f.packets) as packets, count(*) as flows
            from ispflow.flow_records f where {started} group by 1, 2, 3, 4""", params)
    for kind in TALKER_COLUMNS:
        _insert_talkers(run, kind, "rollup_talkers_1h", "", TOP_NETWORK)
        _insert_talkers(run, kind, "rollup_account_talkers_1h", "account", TOP_ACCOUNT)


# The columns of each kind of talker row; the other address column is null.
TALKER_COLUMNS = {"source": ("src_addr", None), "destination": (None, "dst_addr"),
                  "conversation": ("src_addr", "dst_addr")}


def _insert_talkers(run, kind: str, table: str, per: str, top: int) -> None:
    """Each hour's (and each ``per`` group's) heaviest ``kind`` talkers by bytes or by flows, and
    one remainder row with null addresses summing the rest, from ``rollup_pairs``. Per account,
    an hour of at most ``SHALLOW`` flows (not in ``rollup_deep``) keeps only its remainder row,
    flagged ``raw``.

    The leaders are picked per group (an ordered ``array_agg`` of row ids, cut at ``top``), not
    by ranking windows over every row: two sorts of a few hundred ids per group cost about half
    of two sorts of the whole table."""
    keys = [c for c in TALKER_COLUMNS[kind] if c]
    partition = ", ".join(["bucket", *([per] if per else [])])
    group = ", ".join([partition, *keys])
    if group == "bucket, account, src_addr, dst_addr":   # rollup_pairs' own key: already summed
        rows = f"select {group}, bytes, packets, flows from rollup_pairs where account is not null"
    else:
        where = f"where {per} is not null" if per else ""
        rows = (f"select {group}, {SUM}(bytes) as bytes, {SUM}(packets) as packets, {SUM}(flows) as flows "
                f"from rollup_pairs {where} group by {group}")
    ties = ", ".join(keys)
    run("drop table if exists pg_temp.rollup_talkers, pg_temp.rollup_kept")
    run(f"create temporary table rollup_talkers on commit drop as select row_number() over () as id, g.* from ({rows}) g")
    leaders_of = f"rollup_talkers join rollup_deep using ({partition})" if per else "rollup_talkers"
    run(f"""create temporary table rollup_kept on commit drop as
            select distinct unnest(by_bytes[1:{top}] || by_flows[1:{top}]) as id from (
                select array_agg(id order by bytes desc, flows desc, {ties}) as by_bytes,
                       array_agg(id order by flows desc, bytes desc, {ties}) as by_flows
                from {leaders_of} group by {partition}) leaders""")
    addresses = ", ".join(c or "null::inet" for c in TALKER_COLUMNS[kind])
    nulls = ", ".join("null::inet" for _ in TALKER_COLUMNS[kind])
    remainder = (f"select {partition}, '{kind}', {nulls}, {SUM}(bytes), {SUM}(packets), {SUM}(flows) "
                 f"from rollup_talkers t where not exists (select 1 from rollup_kept k where k.id = t.id) "
                 f"group by {partition}")
    leaders = (f"select {partition}, '{kind}', {addresses}, bytes, packets, flows{', false' if per else ''} "
               f"from rollup_talkers t where exists (select 1 from rollup_kept k where k.id = t.id)")
    if per:
        remainder = (f"select r.*, d.bucket is null from ({remainder}) r(bucket, {per}) "
                     f"left join rollup_deep d using (bucket, {per})")
    columns = f"bucket, {per + ', ' if per else ''}kind, src_addr, dst_addr, bytes, packets, flows{', raw' if per else ''}"
    run(f"insert into ispflow.{table} ({columns}) {leaders} union all {remainder} {'order by 2' if per else ''}")


def watermark(conn) -> datetime | None:
    """The moment up to which the roll-ups are complete (None before the first run)."""
    return conn.exec_driver_sql("select done_until from ispflow.analytics_watermarks where name = %(n)s",
                                {"n": WATERMARK}).scalar()


def _first_flow_hour(conn) -> datetime | None:
    first_chunk = conn.exec_driver_sql(
        "select min(range_start) from timescaledb_information.chunks "
        "where hypertable_schema = 'ispflow' and hypertable_name = 'flows'").scalar()
    if first_chunk is None:
        return None
    first = conn.exec_driver_sql(
        "select min(ts_start) from ispflow.flows where ts_start >= %(s)s and ts_start < %(s)s + interval '40 days'",
        {"s": first_chunk}).scalar()
    return floor_time(first, HOUR) if first else None


def _incomplete(conn, start: datetime, end: datetime) -> bool:
    """Whether the roll-ups of ``[start, end)`` miss flows that start in it (or, after a manual
    change, hold more): the hour's raw flows counted against the flows its roll-ups count.

    Counting is a fraction of the cost of rolling up; flows are never deleted from an hour
    still within retention, and roll-ups are only added for committed flows, so equal counts
    mean every flow of the range is in its roll-ups exactly once.
    """
    raw = conn.exec_driver_sql("select count(*) from ispflow.flows where ts_start >= %(s)s and ts_start < %(e)s",
                               {"s": start, "e": end}).scalar()
    rolled = conn.exec_driver_sql("select coalesce(sum(flows), 0) from ispflow.rollup_network_5m "
                                  "where bucket >= %(s)s and bucket < %(e)s", {"s": start, "e": end}).scalar()
    return raw != rolled


def update(engine, now: datetime | None = None, budget_s: float = 240.0) -> tuple[datetime, datetime] | None:
    """Check (and where needed rebuild) the roll-ups up to the last settled hour; returns the
    range checked, if any.

    Works oldest first, one hour per transaction with the watermark; stops after ``budget_s``
    seconds (the next run goes on from there).
    """
    now = now or datetime.now(timezone.utc)
    target = floor_time(now - SETTLE, HOUR)
    deadline = clock.monotonic() + budget_s
    with engine.connect() as conn:
        if not conn.exec_driver_sql("select pg_try_advisory_lock(%(k)s)", {"k": _LOCK}).scalar():
            return None  # another run is at it
        try:
            done = watermark(conn)
            if done is not None and done >= target:
                conn.commit()
                return None
            if done is None:
                start = _first_flow_hour(conn)
            else:
                start = done - REVISIT if _incomplete(conn, done - REVISIT, done) else done
            conn.commit()
            if start is None:
                return None
            begun = start
            while start < target and clock.monotonic() < deadline:
                end = start + HOUR
                with conn.begin():
                    conn.exec_driver_sql("select pg_advisory_xact_lock(%(k)s)", {"k": WRITE_LOCK})
                    incomplete = _incomplete(conn, start, end)
                    if incomplete or start < _rebuild_until(conn):
                        build(conn, start, end)
                    if incomplete:   # what was missing included long flows' pieces in the next hour
                        _advance(conn, end + HOUR, REBUILD_UNTIL)
                    _advance(conn, max(end, done) if done else end)
                start = end
            return (begun, start) if start > begun else None
        finally:
            conn.exec_driver_sql("select pg_advisory_unlock(%(k)s)", {"k": _LOCK})
            conn.commit()


def _rebuild_until(conn) -> datetime:
    until = conn.exec_driver_sql("select done_until from ispflow.analytics_watermarks where name = %(n)s",
                                 {"n": REBUILD_UNTIL}).scalar()
    return until or datetime(1970, 1, 1, tzinfo=timezone.utc)


def rebuild(engine, start: datetime, end: datetime) -> None:
    """Recompute the given range (widened to whole hours), e.g. after late flows were replayed."""
    start, end = floor_time(start, HOUR), floor_time(end - timedelta(microseconds=1), HOUR) + HOUR
    with engine.connect() as conn:
        while start < end:
            with conn.begin():
                build(conn, start, min(start + UNIT, end))
            start += UNIT


def _advance(conn, until: datetime, name: str = WATERMARK) -> None:
    conn.exec_driver_sql(
        "insert into ispflow.analytics_watermarks (name, done_until) values (%(n)s, %(u)s) "
        "on conflict (name) do update set done_until = greatest(analytics_watermarks.done_until, "
        "excluded.done_until), updated_at = now()",
        {"n": name, "u": until})


def update_rollups(settings=None) -> str:
    """The periodic job: roll up the hours that have settled since the last run."""
    from ..database import engine_for
    from ..jobs import job_settings

    settings = settings or job_settings()
    done = update(engine_for(settings.DATABASE_URL))
    if done is None:
        return "roll-ups are up to date"
    return f"rolled up {done[0].isoformat()} to {done[1].isoformat()}"
