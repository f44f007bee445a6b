"""Bandwidth series and their statistics: 95th percentile, peak, average, volume, resolution."""
from datetime import timedelta

import pytest

from ispflow.analytics import bandwidth, rollups
from ispflow.analytics.bandwidth import Scope, percentile95
from ispflow.search.criteria import parse_network
from tests.sample_flows import flow, insert_flows, utc

DAY = utc("2026-03-02T00:00:00Z")


def test_95th_percentile_drops_the_top_5_percent_of_samples():
    assert percentile95(list(range(1, 101))) == 95
    assert percentile95([10] * 19 + [1000]) == 10      # one burst in 20 samples is forgiven
    assert percentile95([10] * 18 + [1000] * 2) == 1000  # two are not
    assert percentile95([]) == 0


def test_statistics_count_quiet_intervals_as_zero_samples():
    start = DAY
    samples = {int((start + i * rollups.STEP).timestamp()): [300 * 1000 // 8, 0] for i in range(10)}
    stats = bandwidth.statistics(samples, start, start + timedelta(hours=1))   # 12 samples, 10 busy
    assert stats["in"].peak_bps == 1000
    assert stats["in"].p95_bps == 1000
    assert stats["in"].volume_bytes == 10 * 37500
    assert stats["in"].average_bps == pytest.approx(10 / 12 * 1000)
    assert stats["out"].peak_bps == 0


def test_resolution_suits_the_period():
    assert bandwidth.resolution(timedelta(hours=1)) == timedelta(minutes=1)
    assert bandwidth.resolution(timedelta(days=1)) == timedelta(minutes=5)
    assert bandwidth.resolution(timedelta(days=7)) == timedelta(minutes=30)
    assert bandwidth.resolution(timedelta(days=30)) == timedelta(hours=2)


def test_rates_use_decimal_prefixes():
    assert bandwidth.human_rate(999) == "999 bit/s"
    assert bandwidth.human_rate(1_500_000) == "1.5 Mbit/s"


def _flows(engine, rows):
    with engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()


def _known_day(engine):
    """ACC-1 downloads 1 MB in each of the first 100 five-minute intervals of the day, and 10 MB in
    5 of them; uploads 0.1 MB per interval. ACC-2 shares nothing with it."""
    rows = []
    for i in range(100):
        size = 10_000_000 if i in (7, 30, 31, 60, 90) else 1_000_000
        at = DAY + i * rollups.STEP + timedelta(seconds=10)
        rows.append(flow(at, "198.51.100.7", "100.64.0.1", bytes=size, direction="in", account="ACC-1"))
        rows.append(flow(at, "100.64.0.1", "198.51.100.7", bytes=100_000, direction="out", account="ACC-1"))
        rows.append(flow(at, "198.51.100.7", "100.64.0.2", bytes=5, direction="in", account="ACC-2"))
    _flows(engine, rows)


def test_account_series_and_statistics_from_the_roll_ups(db_engine):
    _known_day(db_engine)
    rollups.update(db_engine, now=DAY + timedelta(days=1, hours=1))
    with db_engine.connect() as conn:
        result = bandwidth.series(conn, Scope("account", account="ACC-1"), DAY, DAY + timedelta(days=1))
    assert result.step == timedelta(minutes=5) and len(result.buckets) == 288
    assert sum(result.bytes_in) == 95 * 1_000_000 + 5 * 10_000_000
    # 288 samples: the top 5 % are 15 samples, which include all five 10 MB intervals.
    assert result.stats["in"].p95_bps == 1_000_000 * 8 / 300
    assert result.stats["in"].peak_bps == 10_000_000 * 8 / 300
    assert result.stats["out"].volume_bytes == 100 * 100_000


def test_the_part_after_the_watermark_comes_from_the_raw_flows(db_engine):
    _known_day(db_engine)
    rollups.update(db_engine, now=DAY + timedelta(hours=4, minutes=15))   # roll-ups up to 04:00
    with db_engine.connect() as conn:
        assert rollups.watermark(conn) == DAY + timedelta(hours=4)
        result = bandwidth.series(conn, Scope("address", network=parse_network("100.64.0.1")),
                                  DAY, DAY + timedelta(days=1))
    assert sum(result.bytes_in) == 95 * 1_000_000 + 5 * 10_000_000


def test_an_hour_is_drawn_per_minute_from_the_raw_flows(db_engine):
    _flows(db_engine, [flow("2026-03-02T10:00:30Z", "100.64.0.1", "198.51.100.1", seconds=120, bytes=1200,
                            direction="out", account="ACC-1")])
    with db_engine.connect() as conn:
        result = bandwidth.series(conn, Scope("network"), utc("2026-03-02T10:00:00Z"), utc("2026-03-02T11:00:00Z"))
    assert result.step == timedelta(minutes=1)
    assert result.bytes_out[:4] == [300, 600, 300, 0]


def test_an_hours_graph_counts_the_part_of_earlier_flows_still_running_in_it(db_engine):
    _flows(db_engine, [
        # 40 minutes before the hour until 20 minutes into it: half its bytes are the hour's.
        flow("2026-03-02T09:20:00Z", "100.64.0.1", "198.51.100.1", seconds=3600, bytes=6000, direction="out"),
        # ended before the hour: nothing of it.
        flow("2026-03-02T09:50:00Z", "100.64.0.1", "198.51.100.1", seconds=540, bytes=999, direction="out"),
        # a wrong clock (ends before it starts), inside the hour: all of it in its start's minute.
        flow("2026-03-02T10:30:10Z", "100.64.0.1", "198.51.100.1", seconds=-5, bytes=77, direction="out")])
    with db_engine.connect() as conn:
        result = bandwidth.series(conn, Scope("network"), utc("2026-03-02T10:00:00Z"), utc("2026-03-02T11:00:00Z"))
    assert result.step == timedelta(minutes=1)
    assert result.bytes_out[:20] == [100] * 20 and result.bytes_out[20] == 0 and result.bytes_out[30] == 77
    assert result.stats["out"].volume_bytes == 2000 + 77
    # The 5-minute samples behind the statistics are the minutes summed.
    assert result.stats["out"].peak_bps == 500 * 8 / 300


def test_interface_graphs_see_in_and_out_from_the_router(db_engine):
    _flows(db_engine, [flow("2026-03-02T10:00:30Z", bytes=1000, in_if=3, out_if=4, direction="out"),
                       flow("2026-03-02T10:00:30Z", bytes=70, in_if=4, out_if=3, direction="in")])
    with db_engine.connect() as conn:
        result = bandwidth.series(conn, Scope("interface", exporter_id=1, if_index=3),
                                  utc("2026-03-02T10:00:00Z"), utc("2026-03-02T11:00:00Z"))
    assert (result.stats["in"].volume_bytes, result.stats["out"].volume_bytes) == (1000, 70)
    assert "entering the router" in result.scope.perspective


def test_a_graph_needs_its_subject():
    with pytest.raises(bandwidth.ScopeError):
        Scope("account")


def test_a_prefix_graph_reads_whole_blocks_and_equals_its_addresses_summed(db_engine):
    _known_day(db_engine)
    rollups.update(db_engine, now=DAY + timedelta(days=1, hours=1))
    day = (DAY, DAY + timedelta(days=1))
    with db_engine.connect() as conn:
        wide = bandwidth.series(conn, Scope("address", network=parse_network("100.64.0.0/22")), *day)
        narrow = bandwidth.series(conn, Scope("address", network=parse_network("100.64.0.0/30")), *day)
        one, two = (bandwidth.series(conn, Scope("address", network=parse_network(a)), *day)
                    for a in ("100.64.0.1", "100.64.0.2"))
        conn.exec_driver_sql("delete from ispflow.rollup_prefix_5m")
        without_blocks = bandwidth.series(conn, Scope("address", network=parse_network("100.64.0.0/22")), *day)
    summed = [a + b for a, b in zip(one.bytes_in, two.bytes_in)]
    assert wide.bytes_in == narrow.bytes_in == summed and sum(summed) > 0
    assert wide.stats == narrow.stats
    assert sum(without_blocks.bytes_in) == 0   # the /22 was drawn from the block roll-ups
