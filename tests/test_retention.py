"""Retention drops whole chunks past the period, never anything newer, and audits what it dropped."""
import os
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ispflow import audit, module_settings
from ispflow.config import Settings
from ispflow.commands.retention import retention_run
from ispflow.retention.jobs import run_retention
from ispflow.signals import retention_ran

UTC = timezone.utc
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # 6 months earlier: 2026-05-22 12:00
WELL_PAST = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
LAST_EXPIRED_CHUNK = datetime(2026, 5, 21, 23, 59, 59, tzinfo=UTC)  # its chunk ends 05-22 00:00
BOUNDARY_CHUNK = datetime(2026, 5, 22, 6, 0, tzinfo=UTC)  # older than the cutoff, but its chunk is not
JUST_INSIDE = datetime(2026, 5, 22, 13, 0, tzinfo=UTC)
RECENT = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)


def add_flows(engine, *moments):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, protocol, bytes, packets) "
            "values (:ts, :ts, 1, '100.64.0.1', '192.0.2.1', 6, 1500, 1)"), [{"ts": m} for m in moments])


def add_nat_events(engine, *moments):
    with engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.nat_events (ts, exporter_id, event) values (:ts, 1, 1)"),
                     [{"ts": m} for m in moments])


def flow_times(engine):
    with engine.connect() as conn:
        return list(conn.execute(sa.text("select ts_start from ispflow.flows order by ts_start")).scalars())


def save_settings(engine, **changes):
    with engine.begin() as conn:
        module_settings.save(conn, module_settings.ModuleSettings(**changes))


def audit_entries(engine, action="retention"):
    with engine.connect() as conn:
        return conn.execute(sa.text("select actor, criteria, row_count from ispflow.audit_log "
                                    "where action = :action order by id"), {"action": action}).all()


@pytest.fixture
def job_settings(database_url, owner_database_url, redis_url, tmp_path):
    return Settings(DATABASE_URL=database_url, OWNER_DATABASE_URL=owner_database_url, REDIS_URL=redis_url,
                    EXPORT_DIR=str(tmp_path / "exports"),
                    SPOOL_DIR=str(tmp_path / "spool"))


def test_only_chunks_wholly_past_the_period_are_dropped(db_engine, job_settings):
    add_flows(db_engine, WELL_PAST, LAST_EXPIRED_CHUNK, BOUNDARY_CHUNK, JUST_INSIDE, RECENT)
    report = run_retention(job_settings, now=NOW)
    assert flow_times(db_engine) == [BOUNDARY_CHUNK, JUST_INSIDE, RECENT]
    assert [(d.table, d.chunks, d.rows) for d in report.dropped] == [("flows", 2, 2)]


def test_the_audit_log_records_the_dropped_range_rows_and_bytes(db_engine, job_settings):
    add_flows(db_engine, WELL_PAST, WELL_PAST, LAST_EXPIRED_CHUNK, RECENT)
    run_retention(job_settings, now=NOW)
    [entry] = audit_entries(db_engine)
    assert entry.actor == "system:retention"
    assert entry.row_count == 3
    assert entry.criteria["table"] == "ispflow.flows"
    assert entry.criteria["from"] == "2026-03-10T00:00:00+00:00"
    assert entry.criteria["to"] == "2026-05-22T00:00:00+00:00"
    assert entry.criteria["bytes"] > 0
    with db_engine.connect() as conn:
        assert audit.verify(conn).ok


def test_a_second_run_finds_nothing_more_to_drop(db_engine, job_settings):
    add_flows(db_engine, WELL_PAST, RECENT)
    run_retention(job_settings, now=NOW)
    again = run_retention(job_settings, now=NOW)
    assert again.dropped == []
    assert again.lines() == ["Nothing was past its retention period."]
    assert len(audit_entries(db_engine)) == 1


def test_a_shorter_period_takes_effect_on_the_next_run(db_engine, job_settings):
    add_flows(db_engine, JUST_INSIDE, datetime(2026, 9, 1, tzinfo=UTC), RECENT)
    run_retention(job_settings, now=NOW)
    assert len(flow_times(db_engine)) == 3
    save_settings(db_engine, retention_flows_months=3)
    run_retention(job_settings, now=NOW)
    assert flow_times(db_engine) == [datetime(2026, 9, 1, tzinfo=UTC), RECENT]


def test_nat_events_follow_their_own_period(db_engine, job_settings):
    two_months_ago = datetime(2026, 9, 20, tzinfo=UTC)
    save_settings(db_engine, retention_nat_months=1)
    add_flows(db_engine, two_months_ago)
    add_nat_events(db_engine, two_months_ago, RECENT)
    report = run_retention(job_settings, now=NOW)
    assert [(d.table, d.rows) for d in report.dropped] == [("nat_events", 1)]
    assert flow_times(db_engine) == [two_months_ago]
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ispflow.nat_events")).scalar() == 1


def test_roll_up_hypertables_follow_the_roll_up_period(owner_engine, job_settings):
    with owner_engine.begin() as conn:  # a later migration's table, created by the schema's owner
        conn.execute(sa.text("create table ispflow.rollup_test_daily (bucket timestamptz not null, bytes bigint)"))
        conn.execute(sa.text("select create_hypertable('ispflow.rollup_test_daily', 'bucket', "
                             "chunk_time_interval => interval '1 day')"))
        conn.execute(sa.text("insert into ispflow.rollup_test_daily values (:old, 1), (:kept, 2)"),
                     {"old": datetime(2025, 9, 1, tzinfo=UTC), "kept": datetime(2025, 11, 1, tzinfo=UTC)})
    try:
        report = run_retention(job_settings, now=NOW)  # roll-ups: 13 months, cutoff 2025-10-22
        with owner_engine.connect() as conn:
            left = conn.execute(sa.text("select bytes from ispflow.rollup_test_daily")).scalars().all()
    finally:
        with owner_engine.begin() as conn:
            conn.execute(sa.text("drop table ispflow.rollup_test_daily"))
    assert left == [2]
    assert [(d.table, d.rows) for d in report.dropped] == [("rollup_test_daily", 1)]


def test_audit_entries_past_the_audit_period_are_deleted_and_the_chain_still_verifies(db_engine, owner_engine,
                                                                                     job_settings):
    with db_engine.begin() as conn:
        for case in ("OLD-1", "OLD-2", "NEW-1"):
            audit.record(conn, actor="olga", role="compliance", action="search", case_ref=case)
    with owner_engine.begin() as conn:  # ages the entries, as time would
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text("update ispflow.audit_log set at = at - interval '6 years' where case_ref like 'OLD-%'"))
    report = run_retention(job_settings)
    assert report.audit_entries == 2
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select case_ref from ispflow.audit_log where action = 'search'")).scalars().all() \
            == ["NEW-1"]
        assert audit.verify(conn).ok
    assert audit_entries(db_engine)[-1].criteria["table"] == "ispflow.audit_log"


def aged_file(path, days_old):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("ts,src,dst\n")
    moment = (datetime.now(UTC) - timedelta(days=days_old)).timestamp()
    os.utime(path, (moment, moment))
    return path


def test_exports_past_the_period_go_with_their_files(db_engine, job_settings, tmp_path):
    old = aged_file(tmp_path / "exports" / "old.csv", 200)
    new = aged_file(tmp_path / "exports" / "new.csv", 1)
    orphan = aged_file(tmp_path / "exports" / "sub" / "orphan.csv", 200)
    with db_engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.exports (requested_by, case_ref, criteria, state, path, created_at) values "
            "('olga', 'C-OLD', '{}', 'finished', :old, now() - interval '200 days'), "
            "('olga', 'C-NEW', '{}', 'finished', :new, now() - interval '1 day')"), {"old": str(old), "new": str(new)})
    report = run_retention(job_settings)
    assert (report.export_rows, report.files) == (1, 2)
    assert not old.exists() and not orphan.exists() and new.exists()
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select case_ref from ispflow.exports")).scalars().all() == ["C-NEW"]


def test_an_export_path_outside_the_export_directory_is_never_deleted(db_engine, job_settings, tmp_path):
    outside = aged_file(tmp_path / "elsewhere" / "keep.csv", 1)
    with db_engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.exports (requested_by, case_ref, criteria, path, created_at) values "
            "('olga', 'C-OLD', '{}', :path, now() - interval '200 days')"), {"path": str(outside)})
    run_retention(job_settings)
    assert outside.exists()


def test_the_spool_keeps_nothing_past_the_period(db_engine, job_settings, tmp_path):
    old = aged_file(tmp_path / "spool" / "batch-1.bin", 200)
    recent = aged_file(tmp_path / "spool" / "batch-2.bin", 0)
    run_retention(job_settings)
    assert not old.exists() and recent.exists()


def test_the_retention_ran_signal_lists_what_was_dropped(db_engine, job_settings):
    add_flows(db_engine, WELL_PAST, RECENT)
    heard = []
    with retention_ran.connected_to(lambda sender, dropped: heard.append(dropped)):
        run_retention(job_settings, now=NOW)
        run_retention(job_settings, now=NOW)  # nothing dropped: no signal
    assert len(heard) == 1
    assert [(d["table"], d["rows"]) for d in heard[0]] == [("flows", 1)]


def test_a_long_backlog_is_dropped_in_batches_each_audited(db_engine, job_settings, monkeypatch):
    monkeypatch.setattr("ispflow.retention.jobs.BATCH_CHUNKS", 2)
    add_flows(db_engine, *(WELL_PAST + timedelta(days=i) for i in range(5)), RECENT)
    report = run_retention(job_settings, now=NOW)
    assert [d.chunks for d in report.dropped] == [2, 2, 1]
    assert sum(e.row_count for e in audit_entries(db_engine)) == 5
    assert flow_times(db_engine) == [RECENT]


def test_the_command_line_runs_the_same_job_and_says_what_it_deleted(db_engine, runner):
    eight_months_ago = datetime.now(UTC) - timedelta(days=245)
    add_flows(db_engine, eight_months_ago, datetime.now(UTC))
    result = runner.invoke(retention_run)
    assert result.exit_code == 0, result.output
    assert "flows: dropped 1 chunks" in result.output
    assert ", 1 rows," in result.output
    assert len(flow_times(db_engine)) == 1
