"""The compliance audit trail: append-only and hash-chained.

Each entry's hash covers its content and the previous entry's hash, so changing or removing
an entry in the middle breaks every later link; the database refuses UPDATE and DELETE on the
table (a trigger), except the retention job's deletion of entries past the audit period, after
which the chain is verified from the oldest remaining entry. Entries say who looked for what
and why, never what was found.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

GENESIS = "0" * 64
_LOCK = 0x15F10A  # advisory lock key serialising appends, so the chain never forks


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    broken_at: int | None = None
    message: str = ""


def _canonical_criteria(criteria: dict | None) -> dict:
    return json.loads(json.dumps(criteria or {}, sort_keys=True, default=str))


def _digest(prev_hash, at, actor, role, action, case_ref, criteria, row_count, export_sha256) -> str:
    material = json.dumps(
        [prev_hash, at.astimezone(timezone.utc).isoformat(timespec="microseconds"), actor, role, action,
         case_ref, criteria, row_count, export_sha256],
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(material.encode()).hexdigest()


def record(conn, *, actor: str, action: str, role: str | None = None, criteria: dict | None = None,
           case_ref: str | None = None, row_count: int | None = None, export_sha256: str | None = None) -> int:
    """Append one entry in the caller's transaction (the caller commits); returns its id."""
    conn.execute(sa.text("select pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    prev = conn.execute(sa.text("select hash from ispflow.audit_log order by id desc limit 1")).scalar() or GENESIS
    at = datetime.now(timezone.utc)
    criteria = _canonical_criteria(criteria)
    digest = _digest(prev, at, actor, role, action, case_ref, criteria, row_count, export_sha256)
    return conn.execute(
        sa.text(
            "insert into ispflow.audit_log (at, actor, role, action, case_ref, criteria, row_count, "
            "export_sha256, prev_hash, hash) values (:at, :actor, :role, :action, :case_ref, "
            "cast(:criteria as jsonb), :row_count, :export_sha256, :prev, :hash) returning id"
        ),
        {"at": at, "actor": actor, "role": role, "action": action, "case_ref": case_ref,
         "criteria": json.dumps(criteria), "row_count": row_count, "export_sha256": export_sha256,
         "prev": prev, "hash": digest},
    ).scalar()


def verify(conn, batch: int = 10_000) -> Verification:
    """Recompute every link, oldest first; the first entry anchors the chain."""
    checked, expected_prev, last_id = 0, None, 0
    while True:
        rows = conn.execute(
            sa.text(
                "select id, at, actor, role, action, case_ref, criteria, row_count, export_sha256, prev_hash, hash "
                "from ispflow.audit_log where id > :after order by id limit :limit"
            ),
            {"after": last_id, "limit": batch},
        ).all()
        if not rows:
            return Verification(True, checked, message=f"{checked} entries verified.")
        for row in rows:
            if expected_prev is not None and row.prev_hash != expected_prev:
                return Verification(False, checked, row.id, f"Entry {row.id} does not follow entry {last_id}: "
                                    "an entry was removed or changed.")
            digest = _digest(row.prev_hash, row.at, row.actor, row.role, row.action, row.case_ref,
                             _canonical_criteria(row.criteria), row.row_count, row.export_sha256)
            if digest != row.hash:
                return Verification(False, checked, row.id, f"Entry {row.id} was changed after it was written.")
            expected_prev, last_id = row.hash, row.id
            checked += 1


def delete_expired(conn, before: datetime) -> int:
    """Remove entries older than ``before`` (the audit retention period); the caller commits."""
    conn.execute(sa.text("select set_config('ispflow.audit_retention_before', :before, true)"),
                 {"before": before.isoformat()})
    deleted = conn.execute(sa.text("delete from ispflow.audit_log where at < :before"), {"before": before}).rowcount
    conn.execute(sa.text("select set_config('ispflow.audit_retention_before', '', true)"))
    return deleted
