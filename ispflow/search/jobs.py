"""Exports as records in ``ispflow.exports``, written by an rq job (or at once when small).

The job runs with the settings of whoever runs it (the panel for small exports, the worker,
which takes its app's settings, for large ones), writes the CSV under EXPORT_DIR as ``.part``
and renames it when complete, keeps ``rows_done`` up to date for the progress bar, and
finishes by writing the manifest and the audit entry with the file's hash. The file's path is
recorded in the export's row: readers find the CSV and its manifest there, never by
recomputing it from their own EXPORT_DIR. ``export_made`` is sent at the end, in that process.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import sqlalchemy as sa

from .. import audit
from ..config import Settings
from ..database import engine_for, raw_connection
from ..jobs import job_settings, queue
from ..module_settings import load
from ..signals import export_made
from .criteria import Criteria
from .export import manifest, private_directory, private_file, write_csv, write_manifest
from .query import totals

# Exports up to this many rows are written during the request; larger ones go to the worker.
SYNC_EXPORT_ROWS = 10_000
JOB_TIMEOUT = 6 * 3600


def create_export(conn, criteria: Criteria, *, requested_by: str, role: str) -> int:
    """Record a queued export; the caller commits."""
    return conn.execute(
        sa.text("insert into ispflow.exports (requested_by, role, case_ref, criteria) "
                "values (:who, :role, :case_ref, cast(:criteria as jsonb)) returning id"),
        {"who": requested_by, "role": role, "case_ref": criteria.case_ref,
         "criteria": json.dumps(criteria.to_json())},
    ).scalar()


def enqueue_export(export_id: int, settings: Settings) -> str:
    job = queue(settings).enqueue(run_export, export_id, job_timeout=JOB_TIMEOUT,
                                  description=f"ispflow export {export_id}")
    with engine_for(settings.DATABASE_URL).begin() as conn:
        conn.execute(sa.text("update ispflow.exports set rq_job_id = :job where id = :id"),
                     {"job": job.id, "id": export_id})
    return job.id


def file_paths(settings: Settings, export_id: int) -> tuple[str, str]:
    """Where a new export is written: its CSV and, beside it, its manifest."""
    csv_path = os.path.join(settings.EXPORT_DIR, f"ispflow-export-{export_id}.csv")
    return csv_path, manifest_path(csv_path)


def manifest_path(csv_path: str) -> str:
    """The manifest beside an export's CSV file (whose path ``ispflow.exports.path`` records)."""
    return os.path.splitext(csv_path)[0] + ".manifest.json"


def run_export(export_id: int, settings: Settings | None = None) -> dict:
    """The rq job: write export ``export_id`` to a file with its manifest and audit entry."""
    settings = settings or job_settings()
    engine = engine_for(settings.DATABASE_URL)
    with engine.begin() as conn:
        row = conn.execute(sa.text("select * from ispflow.exports where id = :id for update"),
                           {"id": export_id}).one()
        criteria = Criteria.from_json(row.criteria)
        module = load(conn)
        expected = totals(conn, criteria).flows
        conn.execute(sa.text("update ispflow.exports set state = 'running', row_count = :n, rows_done = 0 "
                             "where id = :id"), {"n": expected, "id": export_id})
        # Audited before the first row is written; the "export" entry at the end adds the file's hash.
        audit.record(conn, actor=row.requested_by, role=row.role, action="export.start",
                     criteria={**criteria.to_json(), "export_id": export_id}, case_ref=criteria.case_ref,
                     row_count=expected)
    csv_path, manifest_path = file_paths(settings, export_id)
    private_directory(settings.EXPORT_DIR)
    partial = csv_path + ".part"

    def progress(rows: int) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("update ispflow.exports set rows_done = :n where id = :id"),
                         {"n": rows, "id": export_id})

    try:
        dbapi = raw_connection(settings.DATABASE_URL)
        try:
            with open(private_file(partial), "wb") as out:
                result = write_csv(dbapi, criteria, out, zone_name=module.timezone, progress=progress,
                                   connect=lambda: raw_connection(settings.DATABASE_URL))
            dbapi.rollback()
        finally:
            dbapi.close()
        os.replace(partial, csv_path)
        finished = datetime.now(timezone.utc)
        with engine.begin() as conn:
            audit.record(conn, actor=row.requested_by, role=row.role, action="export",
                         criteria={**criteria.to_json(), "export_id": export_id}, case_ref=criteria.case_ref,
                         row_count=result.rows, export_sha256=result.sha256)
            # The manifest carries the audit log's head (this export's entry): an anchor outside the database.
            head = audit.head(conn)
            data = manifest(criteria, requested_by=row.requested_by, role=row.role or "", result=result,
                            file_name=os.path.basename(csv_path), created_at=finished, zone_name=module.timezone)
            write_manifest(manifest_path, {**data, "audit_head": head.as_dict()})
            conn.execute(sa.text(
                "update ispflow.exports set state = 'finished', row_count = :n, rows_done = :n, sha256 = :sha, "
                "path = :path, finished_at = :at where id = :id"),
                {"n": result.rows, "sha": result.sha256, "path": csv_path, "at": finished, "id": export_id})
    except Exception as exc:
        # A manifest whose audit entry never committed would be an anchor to nothing.
        for leftover in (partial, manifest_path):
            if os.path.exists(leftover):
                os.remove(leftover)
        with engine.begin() as conn:
            conn.execute(sa.text("update ispflow.exports set state = 'failed', message = :m, finished_at = now() "
                                 "where id = :id"), {"m": f"{type(exc).__name__}: {exc}"[:500], "id": export_id})
        raise
    export_made.send(row.requested_by, export_id=export_id, case_ref=criteria.case_ref, row_count=result.rows,
                     sha256=result.sha256)
    return {"export_id": export_id, "rows": result.rows, "sha256": result.sha256}


def get_export(conn, export_id: int):
    return conn.execute(sa.text("select * from ispflow.exports where id = :id"), {"id": export_id}).first()


def exports_of(conn, requested_by: str, limit: int = 50):
    return conn.execute(
        sa.text("select * from ispflow.exports where requested_by = :who order by id desc limit :limit"),
        {"who": requested_by, "limit": limit},
    ).all()
