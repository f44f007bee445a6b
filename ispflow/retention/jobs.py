"""Retention: destroy retained data once it is past its period, and record what was destroyed.

The law (Czech Act 127/2005 §97) says traffic data is kept for the period and then destroyed,
so everything that holds a copy is swept: the flow and NAT hypertables (whole chunks through
``drop_chunks``, never row by row, never a chunk holding anything newer than the period), roll-up
hypertables, finished CSV exports, the collector's spool, and the audit log past its own,
longer period. Each deletion is written to the audit log: table, time range, rows and bytes.

A chunk is dropped only once its whole time range is past the period, so data outlives the
period by at most one chunk interval (one day) plus the time until the next daily run.

The licensed TimescaleDB edition's retention policies are not used even where available: they
would delete without writing the audit entry, and ``drop_chunks`` works on both editions.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from .. import audit, module_settings
from ..config import Settings
from ..database import engine_for
from ..signals import retention_ran

log = logging.getLogger(__name__)

ACTOR = "system:retention"
BATCH_CHUNKS = 31  # chunks dropped per transaction, so a long backlog commits as it goes

# Hypertable -> the module setting that holds its period. Roll-up hypertables are named rollup_*.
PERIOD_OF_TABLE = {"flows": "retention_flows_months", "nat_events": "retention_nat_months"}
ROLLUP_PREFIX = "rollup"


@dataclass(frozen=True)
class Dropped:
    """What one batch of dropped chunks held."""

    table: str
    chunks: int
    range_start: datetime
    range_end: datetime
    rows: int
    bytes: int

    def as_dict(self) -> dict:
        return {"table": self.table, "chunks": self.chunks, "from": self.range_start.isoformat(),
                "to": self.range_end.isoformat(), "rows": self.rows, "bytes": self.bytes}


@dataclass
class RetentionReport:
    cutoffs: dict[str, datetime]
    dropped: list[Dropped] = field(default_factory=list)
    audit_entries: int = 0
    export_rows: int = 0
    files: int = 0

    def lines(self) -> list[str]:
        """One sentence per thing done, for the command line and the job's log."""
        out = [f"{d.table}: dropped {d.chunks} chunks from {d.range_start:%Y-%m-%d %H:%M} to "
               f"{d.range_end:%Y-%m-%d %H:%M} UTC, {d.rows} rows, {d.bytes} bytes." for d in self.dropped]
        if self.audit_entries:
            out.append(f"audit_log: deleted {self.audit_entries} entries past the audit period.")
        if self.export_rows or self.files:
            out.append(f"exports and spool: deleted {self.export_rows} export records and {self.files} files.")
        return out or ["Nothing was past its retention period."]


def period_field(table: str) -> str | None:
    """The module setting giving ``table``'s retention period; None for tables retention leaves alone."""
    if table in PERIOD_OF_TABLE:
        return PERIOD_OF_TABLE[table]
    if table.startswith(ROLLUP_PREFIX):
        return "retention_rollups_months"
    return None


def cutoffs(settings: module_settings.ModuleSettings, now: datetime) -> dict[str, datetime]:
    """Per retained hypertable (and the audit log): the moment before which data is expired."""
    months = {name: getattr(settings, name) for name in
              ("retention_flows_months", "retention_nat_months", "retention_rollups_months",
               "retention_audit_months")}
    return {name: module_settings.months_before(now, value) for name, value in months.items()}


def retained_hypertables(conn) -> list[tuple[str, str]]:
    """(hypertable name, its time column) of every hypertable in schema ispflow that has a period."""
    rows = conn.execute(sa.text(
        "select d.hypertable_name, d.column_name from timescaledb_information.dimensions d "
        "where d.hypertable_schema = 'ispflow' and d.dimension_number = 1 order by d.hypertable_name"
    )).all()
    return [(r.hypertable_name, r.column_name) for r in rows if period_field(r.hypertable_name)]


def expired_chunks(conn, table: str, cutoff: datetime) -> list:
    """Chunks of ``ispflow.<table>`` whose whole range ends at or before ``cutoff``, oldest first."""
    return conn.execute(sa.text(
        "select chunk_schema, chunk_name, range_start, range_end from timescaledb_information.chunks "
        "where hypertable_schema = 'ispflow' and hypertable_name = :table and range_end <= :cutoff "
        "order by range_start"
    ), {"table": table, "cutoff": cutoff}).all()


def drop_expired_chunks(engine: sa.Engine, table: str, time_column: str, cutoff: datetime,
                        period_months: int) -> list[Dropped]:
    """Drop every chunk of ``ispflow.<table>`` wholly older than ``cutoff``, auditing each batch.

    Each batch is measured (rows, bytes) and dropped in one transaction with its audit entry,
    so the log never claims a deletion that did not happen, nor misses one that did.
    """
    dropped = []
    while True:
        with engine.begin() as conn:
            chunks = expired_chunks(conn, table, cutoff)[:BATCH_CHUNKS]
            if not chunks:
                return dropped
            batch = _measure(conn, table, time_column, chunks)
            conn.execute(sa.text("select drop_chunks(cast(:relation as regclass), older_than => :older_than)"),
                         {"relation": f"ispflow.{table}", "older_than": batch.range_end})
            audit.record(conn, actor=ACTOR, action="retention", row_count=batch.rows, criteria={
                **batch.as_dict(), "table": f"ispflow.{table}", "period_months": period_months,
                "cutoff": cutoff.isoformat()})
        log.info("retention: %s", batch.as_dict())
        dropped.append(batch)


def _measure(conn, table: str, time_column: str, chunks) -> Dropped:
    names = {c.chunk_name for c in chunks}
    sizes = conn.execute(sa.text("select chunk_name, total_bytes "
                                 "from chunks_detailed_size(cast(:relation as regclass))"),
                         {"relation": f"ispflow.{table}"}).all()
    start, end = chunks[0].range_start, chunks[-1].range_end
    # The range covers exactly these chunks (chunks never overlap), so chunk exclusion keeps it to them.
    # Table and column names come from TimescaleDB's catalog and are quoted; the values are bound.
    quote = conn.dialect.identifier_preparer.quote
    rows = conn.execute(sa.text(f"select count(*) from ispflow.{quote(table)} "
                                f"where {quote(time_column)} >= :start and {quote(time_column)} < :end"),
                        {"start": start, "end": end}).scalar()
    return Dropped(table, len(chunks), start, end, rows,
                   sum(s.total_bytes or 0 for s in sizes if s.chunk_name in names))


def delete_expired_audit_entries(engine: sa.Engine, cutoff: datetime, period_months: int) -> int:
    """Remove audit entries past the audit period; the log's own boundary entry says up to where."""
    with engine.begin() as conn:
        return audit.delete_expired(conn, cutoff, actor=ACTOR, criteria={
            "to": cutoff.isoformat(), "period_months": period_months, "cutoff": cutoff.isoformat()})


def delete_expired_exports(engine: sa.Engine, export_dir: str, cutoff: datetime) -> tuple[int, int]:
    """Delete export records made before ``cutoff`` and their files; returns (records, files)."""
    root = Path(export_dir).resolve()
    with engine.begin() as conn:
        paths = conn.execute(sa.text("delete from ispflow.exports where created_at < :cutoff returning path"),
                             {"cutoff": cutoff}).scalars().all()
        files = sum(_unlink_inside(root, p) for p in paths if p)
        if paths:
            audit.record(conn, actor=ACTOR, action="retention", row_count=len(paths), criteria={
                "table": "ispflow.exports", "to": cutoff.isoformat(), "rows": len(paths), "files": files})
    return len(paths), files + delete_files_older_than(export_dir, cutoff)


def _unlink_inside(root: Path, path: str) -> int:
    target = Path(path) if os.path.isabs(path) else root / path
    target = target.resolve()
    if root not in target.parents or not target.is_file():
        return 0
    target.unlink()
    return 1


def delete_files_older_than(directory: str, cutoff: datetime) -> int:
    """Delete regular files under ``directory`` last modified before ``cutoff``; returns how many."""
    if not os.path.isdir(directory):
        return 0
    limit = cutoff.timestamp()
    count = 0
    for path in Path(directory).rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < limit:
                path.unlink()
                count += 1
        except FileNotFoundError:  # taken by the collector's replay meanwhile
            continue
    return count


def run_retention(settings: Settings | None = None, now: datetime | None = None) -> RetentionReport:
    """The daily retention job (also ``ispflow retention run``): delete everything past its period.

    Runs whether or not the module is enabled: data already kept must still go when due.
    """
    from ..jobs import job_settings

    settings = settings or job_settings()
    now = now or datetime.now(timezone.utc)
    # Destroying evidence is the owner's privilege alone (drop_chunks needs it too): the only
    # part of the worker that connects as the owner is this job.
    engine = engine_for(settings.owner_database_url)
    with engine.connect() as conn:
        current = module_settings.load(conn)
        tables = retained_hypertables(conn)
    limits = cutoffs(current, now)
    report = RetentionReport(cutoffs=limits)
    for table, time_column in tables:
        name = period_field(table)
        report.dropped += drop_expired_chunks(engine, table, time_column, limits[name], getattr(current, name))
    report.audit_entries = delete_expired_audit_entries(
        engine, limits["retention_audit_months"], current.retention_audit_months)
    # Exports and the spool hold flow and NAT records: nothing older than the shorter period stays.
    data_cutoff = max(limits["retention_flows_months"], limits["retention_nat_months"])
    report.export_rows, export_files = delete_expired_exports(engine, settings.EXPORT_DIR, data_cutoff)
    report.files = export_files + delete_files_older_than(settings.SPOOL_DIR, data_cutoff)
    if report.dropped:
        retention_ran.send("ispflow.retention", dropped=[d.as_dict() for d in report.dropped])
    return report

