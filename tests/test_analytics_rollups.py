"""The roll-ups hold exactly the flows they summarise, however flows fall across buckets."""
import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ispflow.analytics import rollups
from tests.sample_flows import flow, insert_flows, utc

START = utc("2026-03-02T10:00:00Z")


def random_flows(count: int, seed: int = 7) -> list[dict]:
    """Flows of three subscribers over three hours, some spanning several 5-minute buckets."""
    rng = random.Random(seed)
    subscribers = [("100.64.0.1", "ACC-1", "home"), ("100.64.0.2", "ACC-2", "home"), ("100.64.1.9", "ACC-3", "biz")]
    rows = []
    for _ in range(count):
        address, account, service = rng.choice(subscribers)
        remote = f"198.51.100.{rng.randint(1, 40)}"
        inbound = rng.random() < 0.6
        start = START + timedelta(seconds=rng.uniform(0, 3 * 3600 - 1))
        seconds = rng.choice([0, 0.5, 3, 290, 310, 1234.567, 3000])
        rows.append(flow(start, remote if inbound else address, address if inbound else remote, seconds=seconds,
                         bytes=rng.randint(40, 10_000_000), packets=rng.randint(1, 9000),
                         account=account, service=service, direction="in" if inbound else "out",
                         src_port=rng.choice([443, 53, 51515, 6881]), dst_port=rng.choice([443, 53, 40000, 25]),
                         protocol=rng.choice([6, 17]), in_if=rng.choice([1, 2]), out_if=rng.choice([2, 3]),
                         exporter_id=1))
    return rows


def expected_per_bucket(rows, key):
    """Per (5-minute bucket, key): bytes and packets spread in proportion to time, flows at start."""
    step = rollups.STEP.total_seconds()
    totals = {}
    for row in rows:
        start, end = row["ts_start"], min(row["ts_end"], row["ts_start"] + rollups.MAX_SPAN)
        first = rollups.floor_time(start, rollups.STEP)
        bucket = first
        span = (end - start).total_seconds()
        while True:
            overlap_end = min(end, bucket + rollups.STEP)
            share = 1.0 if span == 0 else ((overlap_end - max(start, bucket)).total_seconds() / span)
            entry = totals.setdefault((bucket, key(row)), [0.0, 0.0, 0])
            entry[0] += row["bytes"] * share
            entry[1] += row["packets"] * share
            entry[2] += bucket == first
            bucket += rollups.STEP
            if bucket >= end:
                break
    assert step == 300
    return totals


@pytest.fixture
def generated(db_engine):
    rows = random_flows(600)
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
    with db_engine.connect() as conn:
        with conn.begin():
            rollups.build(conn, START - timedelta(hours=1), START + timedelta(hours=5))
    return rows


def _query(engine, sql):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).all()


def test_roll_ups_add_up_to_the_raw_flows_exactly(db_engine, generated):
    raw = _query(db_engine, "select direction, sum(bytes), sum(packets), count(*) from ispflow.flows "
                            "group by 1 order by 1")
    for table in ("rollup_traffic_5m", "rollup_network_5m"):
        summed = _query(db_engine, f"select direction, sum(bytes), sum(packets), sum(flows) from ispflow.{table} "
                                   "group by 1 order by 1")
        assert summed == raw, table


def test_each_bucket_holds_the_time_share_of_every_flow_crossing_it(db_engine, generated):
    expected = expected_per_bucket(generated, lambda r: (r["dst_addr"] if r["direction"] == "in" else r["src_addr"],
                                                         r["direction"]))
    stored = {(row.bucket, (row.address, row.direction)): (row.bytes, row.packets, row.flows) for row in _query(
        db_engine, "select bucket, host(address) as address, direction, bytes, packets, flows "
                   "from ispflow.rollup_traffic_5m")}
    assert set(stored) <= set(expected)
    assert {k for k, v in expected.items() if v[2]} <= set(stored)
    for key, (bytes_, packets, flows) in stored.items():
        want = expected[key]
        assert abs(bytes_ - want[0]) < 20 and abs(packets - want[1]) < 20 and flows == want[2], key


def test_flows_crossing_bucket_boundaries_are_split_in_proportion_to_time(db_engine):
    # 600 s from 10:02:30: a quarter in 10:00, half in 10:05, a quarter in 10:10; the running floor
    # of the cumulative share (250, 752, 1003) gives the pieces.
    with db_engine.connect() as conn:
        insert_flows(conn, [flow("2026-03-02T10:02:30Z", "100.64.0.1", "198.51.100.1", seconds=600, bytes=1003,
                                 packets=9, direction="out", account="ACC-1")])
        conn.commit()
        with conn.begin():
            rollups.build(conn, START, START + timedelta(hours=1))
    rows = _query(db_engine, "select bucket, bytes, packets, flows from ispflow.rollup_traffic_5m order by bucket")
    assert [(r.bucket, r.bytes, r.packets, r.flows) for r in rows] == [
        (utc("2026-03-02T10:00:00Z"), 250, 2, 1),
        (utc("2026-03-02T10:05:00Z"), 502, 4, 0),
        (utc("2026-03-02T10:10:00Z"), 251, 3, 0),
    ]


def test_interface_roll_ups_count_each_flow_in_on_its_input_and_out_on_its_output(db_engine, generated):
    raw_in = _query(db_engine, "select in_if, sum(bytes), count(*) from ispflow.flows group by 1 order by 1")
    raw_out = _query(db_engine, "select out_if, sum(bytes), count(*) from ispflow.flows group by 1 order by 1")
    rolled = {d: _query(db_engine, f"select if_index, sum(bytes), sum(flows) from ispflow.rollup_interface_5m "
                                   f"where direction = '{d}' group by 1 order by 1") for d in ("in", "out")}
    assert rolled["in"] == raw_in and rolled["out"] == raw_out


def test_hourly_roll_ups_count_each_flow_in_the_hour_it_started(db_engine, generated):
    raw = _query(db_engine, "select time_bucket('1 hour', ts_start) h, sum(bytes), sum(packets), count(*) "
                            "from ispflow.flows group by 1 order by 1")
    apps = _query(db_engine, "select bucket, sum(bytes), sum(packets), sum(flows) from ispflow.rollup_apps_1h "
                             "where account is null group by 1 order by 1")
    assert apps == raw
    for kind in ("source", "destination", "conversation"):
        talkers = _query(db_engine, f"select bucket, sum(bytes), sum(packets), sum(flows) from "
                                    f"ispflow.rollup_talkers_1h where kind = '{kind}' "
                                    "group by 1 order by 1")
        assert talkers == raw, kind
    # Per account only the hours deeper than SHALLOW (the others are read raw).
    per_account_hour = _query(db_engine, "select time_bucket('1 hour', ts_start), account, sum(bytes), count(*) "
                                         "from ispflow.flow_records where account is not null group by 1, 2")
    deep = {(h, a): (b, n) for h, a, b, n in per_account_hour if n > rollups.SHALLOW}
    accounts = _query(db_engine, "select bucket, account, sum(bytes), sum(flows) from ispflow.rollup_apps_1h "
                                 "where account is not null group by 1, 2")
    assert {(h, a): (b, n) for h, a, b, n in accounts} == deep


def test_building_the_same_hours_twice_gives_the_same_rows(db_engine, generated):
    before = _query(db_engine, "select * from ispflow.rollup_traffic_5m order by 1, 2, 5")
    with db_engine.connect() as conn:
        with conn.begin():
            rollups.build(conn, START, START + timedelta(hours=2))
    assert _query(db_engine, "select * from ispflow.rollup_traffic_5m order by 1, 2, 5") == before


def test_the_job_rolls_up_settled_hours_and_keeps_a_watermark(db_engine):
    with db_engine.connect() as conn:
        insert_flows(conn, random_flows(50))
        conn.commit()
    now = START + timedelta(hours=3, minutes=5)
    assert rollups.update(db_engine, now=now) == (START, START + timedelta(hours=2))
    with db_engine.connect() as conn:
        assert rollups.watermark(conn) == START + timedelta(hours=2)
    assert rollups.update(db_engine, now=now) is None


def test_a_late_flow_within_the_revisit_window_is_counted(db_engine):
    with db_engine.connect() as conn:
        insert_flows(conn, [flow("2026-03-02T10:20:00Z", bytes=100, account="ACC-1")])
        conn.commit()
    rollups.update(db_engine, now=START + timedelta(hours=1, minutes=15))
    with db_engine.connect() as conn:
        insert_flows(conn, [flow("2026-03-02T10:40:00Z", bytes=23, account="ACC-1")])
        conn.commit()
    rollups.update(db_engine, now=START + timedelta(hours=2, minutes=15))
    assert _query(db_engine, "select sum(bytes) from ispflow.rollup_traffic_5m")[0][0] == 123


def test_the_previous_hour_is_not_computed_again_without_late_flows(db_engine):
    with db_engine.connect() as conn:
        insert_flows(conn, [flow("2026-03-02T10:20:00Z", bytes=100, account="ACC-1")])
        conn.commit()
    rollups.update(db_engine, now=START + timedelta(hours=1, minutes=15))
    assert rollups.update(db_engine, now=START + timedelta(hours=2, minutes=15)) == (
        START + timedelta(hours=1), START + timedelta(hours=2))


def test_roll_up_bounds_must_be_whole_hours(db_engine):
    with db_engine.connect() as conn, pytest.raises(ValueError):
        rollups.build(conn, START + timedelta(minutes=5), START + timedelta(hours=1))


def test_prefix_roll_ups_sum_the_subscriber_addresses_of_each_block(db_engine, generated):
    per_address = _query(db_engine, "select bucket, network(set_masklen(address, 24)) as prefix, direction, "
                                    "sum(bytes), sum(packets), sum(flows) from ispflow.rollup_traffic_5m "
                                    "group by 1, 2, 3 order by 1, 2, 3")
    blocks = _query(db_engine, "select bucket, prefix, direction, bytes, packets, flows from ispflow.rollup_prefix_5m "
                               "order by 1, 2, 3")
    assert blocks == per_address
    assert {str(row.prefix) for row in blocks} == {"100.64.0.0/24", "100.64.1.0/24"}


def test_every_accounts_talkers_add_up_to_its_flows_hour_by_hour(db_engine, generated):
    raw = _query(db_engine, "select time_bucket('1 hour', ts_start), account, sum(bytes), sum(packets), count(*) "
                            "from ispflow.flow_records group by 1, 2 order by 1, 2")
    for kind in ("source", "destination", "conversation"):
        talkers = _query(db_engine, f"select bucket, account, sum(bytes), sum(packets), sum(flows) "
                                    f"from ispflow.rollup_account_talkers_1h where kind = '{kind}' "
                                    "group by 1, 2 order by 1, 2")
        assert talkers == raw, kind


def test_an_account_keeps_its_heaviest_talkers_of_the_hour_and_one_remainder(db_engine):
    # ACC-1 talks to 40 servers in one hour, server i sending i MB: the top TOP_ACCOUNT by bytes are
    # kept, and so are the ones with the most flows (servers 1-3 send many small flows, enough to
    # make the hour deeper than rollups.SHALLOW).
    rows = []
    for i in range(1, 41):
        rows.append(flow(START + timedelta(minutes=i), f"198.51.100.{i}", "100.64.0.1", bytes=i * 1_000_000,
                         direction="in", account="ACC-1"))
    for i in range(1, 4):
        rows += [flow(START + timedelta(minutes=50, seconds=s), f"198.51.100.{i}", "100.64.0.1", bytes=1,
                      direction="in", account="ACC-1") for s in range(50)]
    assert len(rows) > rollups.SHALLOW
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
        with conn.begin():
            rollups.build(conn, START, START + timedelta(hours=1))
    stored = _query(db_engine, "select host(src_addr) as src, bytes, flows from ispflow.rollup_account_talkers_1h "
                               "where kind = 'source' and account = 'ACC-1' order by bytes desc")
    heaviest = {f"198.51.100.{i}" for i in range(41 - rollups.TOP_ACCOUNT, 41)}
    chattiest = {f"198.51.100.{i}" for i in range(1, 4)}
    kept = {row.src for row in stored if row.src is not None}
    assert kept == heaviest | chattiest
    remainder = [row for row in stored if row.src is None]
    others = set(range(1, 41 - rollups.TOP_ACCOUNT)) - {1, 2, 3}
    assert [(r.bytes, r.flows) for r in remainder] == [(sum(others) * 1_000_000, len(others))]
