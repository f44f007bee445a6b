"""Storage statistics come from chunk sizes and hourly samples; the projection says when the disk fills."""
import os
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ispflow.config import Settings
from ispflow.commands.retention import storage_command
from ispflow.retention.storage import (DATABASE, DayUsage, StorageReport, Volume, sample_storage,
                                       storage_report)

UTC = timezone.utc


@pytest.fixture
def settings(database_url, owner_database_url, redis_url):
    return Settings(DATABASE_URL=database_url, OWNER_DATABASE_URL=owner_database_url, REDIS_URL=redis_url)


def add_flows(engine, day, count):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, protocol, bytes, packets) "
            "select :ts + n * interval '1 second', :ts, 1, '100.64.0.1', '192.0.2.1', 6, 1500, 1 "
            "from generate_series(1, :count) n"),
            {"ts": datetime.combine(day, datetime.min.time(), UTC), "count": count})


def report_of(engine, settings):
    with engine.connect() as conn:
        return storage_report(conn, settings)


def test_size_and_rows_per_day_come_from_each_days_chunk(db_engine, settings):
    today = datetime.now(UTC).date()
    add_flows(db_engine, today - timedelta(days=2), 300)
    add_flows(db_engine, today - timedelta(days=1), 100)
    sample_storage(settings)  # analyzes the chunks, so their row estimates are exact at this size
    report = report_of(db_engine, settings)
    assert [(d.day, d.rows) for d in report.days] == [(today - timedelta(days=2), 300),
                                                      (today - timedelta(days=1), 100)]
    assert all(d.bytes > 0 for d in report.days)
    assert report.rows_per_day == 200
    assert report.growth_per_day == sum(d.bytes for d in report.days) // 2
    assert report.days_held == 3


def test_months_add_up_their_days(db_engine, settings):
    add_flows(db_engine, date(2026, 9, 3), 10)
    add_flows(db_engine, date(2026, 9, 20), 10)
    add_flows(db_engine, date(2026, 10, 1), 10)
    sample_storage(settings)
    report = report_of(db_engine, settings)
    september = [d for d in report.days if d.day.month == 9]
    assert [(m.day, m.rows) for m in report.months] == [(date(2026, 9, 1), 20), (date(2026, 10, 1), 10)]
    assert report.months[0].bytes == sum(d.bytes for d in september)


def test_total_size_counts_the_flow_hypertable_with_its_chunks(db_engine, settings):
    add_flows(db_engine, datetime.now(UTC).date(), 1000)
    report = report_of(db_engine, settings)
    with db_engine.connect() as conn:
        flows = conn.execute(sa.text("select hypertable_size('ispflow.flows')")).scalar()
    assert report.tables["ispflow.flows"] == flows > 0
    assert report.total_bytes >= flows


def test_a_local_database_reports_its_volumes_free_space(db_engine, settings):
    report = report_of(db_engine, settings)
    with db_engine.connect() as conn:
        directory = conn.execute(sa.text("select setting from pg_settings where name = 'data_directory'")).scalar()
    assert report.volume.path == directory
    assert 0 < report.volume.free_bytes <= report.volume.total_bytes
    assert os.statvfs(directory).f_blocks * os.statvfs(directory).f_frsize == report.volume.total_bytes


def test_a_remote_database_has_no_free_space_figure(db_engine, database_url):
    remote = Settings(DATABASE_URL=database_url.replace("127.0.0.1", "db.example.net"))
    with db_engine.connect() as conn:
        report = storage_report(conn, remote)
    assert report.volume is None
    assert report.volume_unknown_because == "the database runs on db.example.net, not on this machine"


def projection(free_gb, days_held, retention_days=183, per_day_gb=1):
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    days = [DayUsage(now.date() - timedelta(days=i), per_day_gb * 10**9, 1) for i in range(days_held, 0, -1)]
    return StorageReport(at=now, tables={}, rows={}, database_bytes=0, days=days, retention_days=retention_days,
                         volume=Volume("/var/lib/postgresql", 10**12, free_gb * 10**9))


def test_the_volume_fills_when_the_rest_of_the_period_needs_more_than_is_free():
    assert projection(free_gb=50, days_held=30).fills_on == date(2027, 1, 11)  # 50 days at 1 GB a day


def test_the_volume_never_fills_when_the_whole_period_fits():
    assert projection(free_gb=200, days_held=30).fills_on is None  # 153 GB still to come


def test_the_hourly_job_stores_a_sample_per_table_and_for_the_database(db_engine, settings):
    add_flows(db_engine, datetime.now(UTC).date(), 50)
    stored = sample_storage(settings)
    with db_engine.connect() as conn:
        samples = dict(conn.execute(sa.text("select relation, row_estimate from ispflow.storage_samples")).all())
    assert len(samples) == stored
    assert samples["ispflow.flows"] == 50
    assert DATABASE in samples and "ispflow.audit_log" in samples


def test_a_repeated_sample_in_the_same_second_overwrites(db_engine, settings):
    moment = datetime(2026, 11, 22, 10, tzinfo=UTC)
    first = sample_storage(settings, now=moment)
    sample_storage(settings, now=moment)
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ispflow.storage_samples")).scalar() == first


def test_the_storage_page_draws_a_bar_per_day_and_the_size_curve(db_engine, settings, auth, client):
    today = datetime.now(UTC).date()
    for back in (3, 2, 1):
        add_flows(db_engine, today - timedelta(days=back), 10 * back)
    sample_storage(settings, now=datetime.now(UTC) - timedelta(hours=1))
    sample_storage(settings)
    auth.login("admin")
    page = client.get("/netflow/storage").data.decode()
    chart = page[page.index('<svg id="day-chart"'):page.index("</svg>")]
    assert chart.count("<rect ") == 3
    assert f"{today - timedelta(days=3)}: " in chart
    assert '<svg id="size-chart"' in page and "<polyline points=" in page
    assert "Free space on the database volume" in page


def test_the_storage_command_prints_the_same_figures(db_engine, settings, runner):
    add_flows(db_engine, date(2026, 9, 3), 10)
    sample_storage(settings)
    result = runner.invoke(storage_command)
    assert result.exit_code == 0, result.output
    assert "Free space on " in result.output
    assert "  2026-09 " in result.output and " 10 rows" in result.output
