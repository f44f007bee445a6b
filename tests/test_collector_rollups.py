"""The collector keeps the roll-ups from memory, and they are the job's to the row; the job
checks each hour by counting and rebuilds only what the collector did not write."""
import ipaddress
import random
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa

from ispflow.analytics import columnar, rollups, top
from ispflow.collector.rollup_keeper import RollupKeeper
from ispflow.database import psycopg2_dsn
from ispflow.testing import RunningCollector
from tests import synthetic
from tests.sample_flows import flow, insert_flows, utc

START = utc("2026-03-02T10:00:00Z")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TABLES = rollups.ROLLUP_TABLES


def micros(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def varied_flows(count: int, seed: int = 11) -> list[dict]:
    """Flows of many kinds over three hours: heavy and light accounts, IPv6, unattributed
    traffic, flows across buckets and hours, counters above 2^31, missing interfaces."""
    rng = random.Random(seed)
    subscribers = [(f"100.64.{i // 200}.{i % 200 + 1}", f"ACC-{i % 40}", rng.choice(["home", "biz", None]))
                   for i in range(120)] + [("2001:db8:1::5", "ACC-V6", "home")]
    heavy = subscribers[:3]
    rows = []
    for _ in range(count):
        address, account, service = rng.choice(heavy) if rng.random() < 0.5 else rng.choice(subscribers)
        v6 = ":" in address
        remote = f"2001:db8:ff::{rng.randint(1, 30):x}" if v6 else f"198.51.100.{rng.randint(1, 60)}"
        kind = rng.random()
        inbound = kind < 0.55
        start = START + timedelta(seconds=rng.uniform(0, 3 * 3600 - 1), microseconds=rng.randint(0, 999_999))
        seconds = rng.choice([0, 0.000001, 0.5, 3, 290, 310, 1234.567891, 3000, 4000, 7300])
        fields = dict(seconds=seconds, bytes=rng.choice([40, 1500, 10_000_000, 3_000_000_000, 2**40 + 7]),
                      packets=rng.randint(1, 9000), src_port=rng.choice([443, 53, 51515, 6881, 0]),
                      dst_port=rng.choice([443, 53, 40000, 25, 0]), protocol=rng.choice([6, 17, 1, 47]),
                      in_if=rng.choice([1, 2, None]), out_if=rng.choice([2, 3, None]), exporter_id=rng.choice([1, 2]))
        if kind > 0.95:   # neither side a subscriber
            rows.append(flow(start, remote, "203.0.113.9", account=None, service=None, direction=None, **fields))
        else:
            rows.append(flow(start, remote if inbound else address, address if inbound else remote,
                             account=account, service=service, direction="in" if inbound else "out", **fields))
    return rows


def columns_of(rows: list[dict], keeper: RollupKeeper) -> columnar.FlowColumns:
    """The flows as the collector holds them after storing them."""
    subscribers = sorted({(r["account"], r["service"]) for r in rows if r["account"]}, key=str)
    index = {s: i for i, s in enumerate(subscribers)}
    account_of, service_of = keeper._name_indexes(subscribers)
    sub = np.array([index[(r["account"], r["service"])] if r["account"] else -1 for r in rows])

    def address(text):
        packed = ipaddress.ip_address(text).packed
        return np.frombuffer(packed.ljust(16, b"\0"), dtype=np.uint8)

    def optional(name):
        return np.array([-1 if r[name] is None else r[name] for r in rows], dtype=np.int64)

    return columnar.FlowColumns(
        ts_start=np.array([micros(r["ts_start"]) for r in rows], dtype=np.int64),
        ts_end=np.array([micros(r["ts_end"]) for r in rows], dtype=np.int64),
        bytes=np.array([r["bytes"] for r in rows], dtype=np.int64),
        packets=np.array([r["packets"] for r in rows], dtype=np.int64),
        family=np.array([6 if ":" in r["src_addr"] else 4 for r in rows], dtype=np.uint8),
        src_addr=np.array([address(r["src_addr"]) for r in rows]), dst_addr=np.array([address(r["dst_addr"]) for r in rows]),
        src_port=np.array([r["src_port"] for r in rows], dtype=np.int32),
        dst_port=np.array([r["dst_port"] for r in rows], dtype=np.int32),
        protocol=np.array([r["protocol"] for r in rows], dtype=np.int16),
        in_if=optional("in_if"), out_if=optional("out_if"),
        exporter_id=np.array([r["exporter_id"] for r in rows], dtype=np.int32),
        account=np.where(sub >= 0, account_of[np.maximum(sub, 0)], -1),
        service=np.where(sub >= 0, service_of[np.maximum(sub, 0)], -1),
        direction=np.array([{"in": 1, "out": 2}.get(r["direction"], 0) for r in rows], dtype=np.int8))


def snapshot(engine) -> dict:
    with engine.connect() as conn:
        return {table: sorted(map(tuple, conn.execute(sa.text(f"select * from ispflow.{table}")).all()), key=repr)
                for table in TABLES}


def empty_rollups(owner_engine) -> None:
    with owner_engine.begin() as conn:
        conn.execute(sa.text("truncate " + ", ".join(f"ispflow.{t}" for t in TABLES)))
        conn.execute(sa.text("delete from ispflow.analytics_watermarks"))


def built_by_the_job(engine, start=START - timedelta(hours=1), end=START + timedelta(hours=6)) -> dict:
    with engine.connect() as conn:
        with conn.begin():
            rollups.build(conn, start, end)
    return snapshot(engine)


def keeper_at(database_url, moment: datetime, **options) -> RollupKeeper:
    return RollupKeeper(psycopg2_dsn(database_url), clock=lambda: moment.timestamp(), **options)


@pytest.fixture
def stored(db_engine):
    rows = varied_flows(3000)
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
    return rows


def test_the_collectors_roll_ups_are_the_jobs_to_the_row(db_engine, owner_engine, database_url, stored):
    keeper = keeper_at(database_url, START)          # every hour still open
    keeper.add(columns_of(stored, keeper))
    keeper.clock = lambda: (START + timedelta(hours=4)).timestamp()
    assert keeper.due()
    assert keeper.flush() == len(stored)
    from_memory = snapshot(db_engine)
    assert all(from_memory[t] for t in TABLES)
    empty_rollups(owner_engine)
    assert from_memory == built_by_the_job(db_engine)


def test_shallow_account_hours_keep_only_a_raw_marker(db_engine, stored):
    per_hour = {}
    for r in stored:
        if r["account"]:
            key = (rollups.floor_time(r["ts_start"], rollups.HOUR), r["account"])
            per_hour[key] = per_hour.get(key, 0) + 1
    assert min(per_hour.values()) <= rollups.SHALLOW < max(per_hour.values())   # the data has both
    built_by_the_job(db_engine)
    with db_engine.connect() as conn:
        rows = conn.execute(sa.text("select bucket, account, raw, src_addr, dst_addr, flows "
                                    "from ispflow.rollup_account_talkers_1h")).all()
    marked = {(r.bucket, r.account) for r in rows if r.raw}
    assert marked == {key for key, n in per_hour.items() if n <= rollups.SHALLOW}
    assert all(r.src_addr is None and r.dst_addr is None for r in rows if r.raw)
    assert not any(r.raw for r in rows if (r.bucket, r.account) not in marked)


def test_an_accounts_reports_over_light_and_heavy_hours_add_up_to_its_flows(db_engine, stored):
    built_by_the_job(db_engine)
    with db_engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.analytics_watermarks (name, done_until) values ('rollups', :u)"),
                     {"u": START + timedelta(hours=6)})
        held = {(r["dst_addr"] if r["direction"] == "in" else r["src_addr"], r["account"]) for r in stored
                if r["account"]}
        for address, account in held:
            conn.execute(sa.text("insert into ispflow.ip_assignments (account, service, prefix, valid_from) "
                                 "values (:a, 'home', :p, '2026-01-01')"), {"a": account, "p": address})
    for account in ("ACC-0", "ACC-7"):   # heavy hours and light ones; light hours only
        mine = [r for r in stored if r["account"] == account]
        for by in ("source", "conversation", "application"):
            with db_engine.connect() as conn:
                report = top.report(conn, by, START, START + timedelta(hours=3), account=account, limit=5)
            assert (report.total.bytes, report.total.flows) == (sum(r["bytes"] for r in mine), len(mine)), (account, by)
    pairs = {}
    for r in stored:
        if r["account"] == "ACC-7":
            pairs[(r["src_addr"], r["dst_addr"])] = pairs.get((r["src_addr"], r["dst_addr"]), 0) + r["bytes"]
    with db_engine.connect() as conn:   # read raw, a light account's ranking is exact
        report = top.report(conn, "conversation", START, START + timedelta(hours=3), account="ACC-7", limit=1)
    key = tuple(str(k) for k in report.rows[0].key)
    assert report.rows[0].bytes == pairs[key] == max(pairs.values())


def test_an_account_light_in_many_separate_hours_is_read_raw_in_one_range(db_engine):
    # A flow every other hour for 70 hours: 35 runs of raw hours, more than a report reads as
    # separate ranges, so it reads one range filtered by hour; the totals are the raw flows'.
    rows = [flow(START + timedelta(hours=2 * i, minutes=7), "198.51.100.7", "100.64.9.9", direction="in",
                 account="ACC-R", bytes=1000 + i) for i in range(35)]
    # and one heavy hour among them, whose talker rows count and whose raw flows must not again
    rows += [flow(START + timedelta(hours=11, seconds=10 * i), f"198.51.100.{i % 200 + 1}", "100.64.9.9",
                  direction="in", account="ACC-R", bytes=77) for i in range(rollups.SHALLOW + 50)]
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
    end = START + timedelta(hours=70)
    built_by_the_job(db_engine, START, end)
    with db_engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.analytics_watermarks (name, done_until) values ('rollups', :u)"),
                     {"u": end})
        conn.execute(sa.text("insert into ispflow.ip_assignments (account, service, prefix, valid_from) "
                             "values ('ACC-R', 'home', '100.64.9.9/32', '2026-01-01')"))
    with db_engine.connect() as conn:
        hours, runs = top._raw_hours(conn, "ACC-R", START, end)
        assert len(runs) == 35 > top._MAX_RUNS
        for by in ("source", "application"):
            report = top.report(conn, by, START, end, account="ACC-R")
            assert (report.total.bytes, report.total.flows) == (sum(r["bytes"] for r in rows), len(rows)), by


def test_the_job_checks_a_rolled_up_hour_by_counting_and_leaves_it(db_engine, database_url, stored):
    keeper = keeper_at(database_url, START + timedelta(hours=4))
    keeper.add(columns_of(stored, keeper))
    keeper.flush(everything=True)
    with db_engine.begin() as conn:   # a mark the job would wipe if it rebuilt the hour
        conn.execute(sa.text("update ispflow.rollup_network_5m set packets = packets + 1000000 "
                             "where bucket = :b"), {"b": START + timedelta(minutes=5)})
    assert rollups.update(db_engine, now=START + timedelta(hours=4)) is not None
    with db_engine.connect() as conn:
        marked = conn.execute(sa.text("select count(*) from ispflow.rollup_network_5m where bucket = :b "
                                      "and packets >= 1000000"), {"b": START + timedelta(minutes=5)}).scalar()
        assert rollups.watermark(conn) == START + timedelta(hours=3)
    assert marked > 0


def test_an_hour_the_collector_lost_is_rebuilt_with_the_next_one(db_engine, owner_engine, database_url, stored):
    expected = built_by_the_job(db_engine)
    empty_rollups(owner_engine)
    keeper = keeper_at(database_url, START + timedelta(hours=4))
    survived = [r for r in stored if not (START + timedelta(hours=1) <= r["ts_start"] < START + timedelta(hours=2))]
    keeper.add(columns_of(survived, keeper))      # the 11:00 hour died with a collector
    keeper.flush()
    rollups.update(db_engine, now=START + timedelta(hours=4))
    assert snapshot(db_engine) == expected


def test_late_flows_go_into_the_roll_ups_with_their_batch(db_engine, owner_engine, database_url, stored):
    expected = built_by_the_job(db_engine)
    empty_rollups(owner_engine)
    keeper = keeper_at(database_url, START + timedelta(hours=5))
    on_time, late = keeper.split(columns_of(stored, keeper))
    assert on_time is None and len(late) == len(stored)
    conn = db_engine.raw_connection()
    try:
        keeper.write_late(conn.dbapi_connection, late)
        conn.commit()
    finally:
        conn.close()
    assert keeper.counters["late"] == len(stored)
    got = snapshot(db_engine)
    # Written per batch, every account-hour keeps talker and application rows, light ones too:
    # the same sums as the job's. The rest is the job's to the row.
    for table in set(TABLES) - {"rollup_account_talkers_1h", "rollup_apps_1h"}:
        assert got[table] == expected[table], table
    assert sums_per_account_hour(got) == sums_per_account_hour(expected)
    network_apps = [row for row in got["rollup_apps_1h"] if row[1] is None]
    assert network_apps == [row for row in expected["rollup_apps_1h"] if row[1] is None]
    raw = {}
    for r in stored:
        if r["account"]:
            entry = raw.setdefault((rollups.floor_time(r["ts_start"], rollups.HOUR), r["account"]), [0, 0])
            entry[0] += r["bytes"]
            entry[1] += 1
    apps = {}
    for bucket, account, _protocol, _port, bytes_, _packets, flows in got["rollup_apps_1h"]:
        if account is not None:
            entry = apps.setdefault((bucket, account), [0, 0])
            entry[0] += bytes_
            entry[1] += flows
    assert apps == raw
    assert rollups.update(db_engine, now=START + timedelta(hours=5)) is not None
    assert snapshot(db_engine)["rollup_traffic_5m"] == expected["rollup_traffic_5m"]


def test_a_flush_after_the_job_checked_the_hour_adds_nothing(db_engine, database_url, stored):
    rollups.update(db_engine, now=START + timedelta(hours=5))   # the job rebuilt everything from raw
    before = snapshot(db_engine)
    keeper = keeper_at(database_url, START + timedelta(hours=5))
    keeper.add(columns_of(stored, keeper))
    assert keeper.flush(everything=True) == 0
    assert keeper.counters["skipped"] == len(stored)
    assert snapshot(db_engine) == before


@pytest.mark.parametrize("count, seed", [(1, 1), (2, 2), (3, 3), (7, 4), (20, 5), (60, 6)])
def test_any_few_flows_roll_up_as_the_job_rolls_them_up(db_engine, owner_engine, database_url, count, seed):
    rows = varied_flows(count, seed)
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
    keeper = keeper_at(database_url, START + timedelta(hours=5))
    keeper.add(columns_of(rows, keeper))
    assert keeper.flush() == count
    from_memory = snapshot(db_engine)
    empty_rollups(owner_engine)
    assert from_memory == built_by_the_job(db_engine)


def test_flows_of_no_subscriber_are_rolled_up_too(db_engine, owner_engine, database_url):
    rows = [flow(START + timedelta(minutes=i), "198.51.100.1", "203.0.113.9", account=None, service=None,
                 direction=None) for i in range(5)]
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
    keeper = keeper_at(database_url, START + timedelta(hours=2))
    keeper.add(columns_of(rows, keeper))
    assert keeper.flush() == 5
    from_memory = snapshot(db_engine)
    empty_rollups(owner_engine)
    assert from_memory == built_by_the_job(db_engine)
    assert from_memory["rollup_network_5m"] and not from_memory["rollup_account_talkers_1h"]


def test_a_roll_up_that_cannot_be_written_costs_no_flow(db_engine, database_url, stored):
    keeper = RollupKeeper("host=127.0.0.1 port=1 dbname=none connect_timeout=1", clock=lambda: START.timestamp())
    keeper.add(columns_of(stored[:10], keeper))
    assert keeper.flush(everything=True) == 0
    assert keeper.counters["failed"] == 10


def test_the_running_collector_rolls_up_what_it_stores(db_engine, owner_engine, database_url, tmp_path):
    now = time.time()
    hour = now // 3600 * 3600
    flows = synthetic.generate_flows(600, seed=5, start=max(hour, now - 600), duration=30,
                                     subscriber_prefix="100.64.0.0/28")
    with db_engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.ip_assignments (account, service, prefix, valid_from) values "
                             "('ACC-A', 'home', '100.64.0.0/29', '2026-01-01'), "
                             "('ACC-B', 'biz', '100.64.0.8/29', '2026-01-01')"))
    running = RunningCollector(database_url, tmp_path)
    running.start()
    try:
        exporter = synthetic.Exporter(version=9, boot_time=now - 3600)
        for packet in exporter.packets(flows, synthetic.V9_IPV4, export_time=now, with_template="every"):
            _send(running.ports()[0], packet)
        running.wait_for_flows(db_engine, len(flows))
    finally:
        running.stop()
    stored = running.counters["flows_stored"]
    assert stored == len(flows), running.counters
    # Held until the stop (a flow of an hour closed in the meantime goes in with its batch).
    counters = running.rollups.counters
    assert counters["rolled_up"] + counters["late"] == len(flows) and counters["rolled_up"] > 0, counters
    from_collector = snapshot(db_engine)
    empty_rollups(owner_engine)
    by_job = built_by_the_job(db_engine, datetime.fromtimestamp(hour - 3600, timezone.utc),
                              datetime.fromtimestamp(hour + 7200, timezone.utc))
    # A live stream's flows may reach into an hour that has just closed: those went in with their
    # batch, the rest at the stop, so a key can have a row from each. The sums are the job's.
    for table, key, counters_at in (("rollup_traffic_5m", 5, 5), ("rollup_prefix_5m", 3, 3),
                                    ("rollup_network_5m", 3, 3), ("rollup_interface_5m", 4, 4),
                                    ("rollup_accounts_1h", 4, 4), ("rollup_talkers_1h", 2, 4)):
        assert sums_by_key(from_collector[table], key, counters_at) == sums_by_key(by_job[table], key, counters_at), table
    network_apps = [[row for row in t["rollup_apps_1h"] if row[1] is None] for t in (from_collector, by_job)]
    assert sums_by_key(network_apps[0], 4, 4) == sums_by_key(network_apps[1], 4, 4)
    assert sums_per_account_hour(from_collector) == sums_per_account_hour(by_job)


def sums_by_key(rows, key: int, counters_at: int) -> dict:
    """Bytes, packets and flows (the three columns from ``counters_at``) summed per the first
    ``key`` columns."""
    sums = {}
    for row in rows:
        entry = sums.setdefault(tuple(row[:key]), [0, 0, 0])
        for i in range(3):
            entry[i] += row[counters_at + i]
    return sums


def sums_per_account_hour(tables_: dict) -> dict:
    """An account's talker rows summed per hour and kind (bucket, account, kind)."""
    return sums_by_key(tables_["rollup_account_talkers_1h"], 3, 5)


def _send(port: int, packet: bytes) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.sendto(packet, ("127.0.0.1", port))
