"""The audit trail is append-only and its hash chain detects tampering."""
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ispflow import audit


def append(engine, n=3):
    with engine.begin() as conn:
        return [audit.record(conn, actor="olga", role="compliance", action="search", case_ref=f"CASE-{i}",
                             criteria={"ip": "198.51.100.7", "from": "2026-01-01T00:00:00+00:00"}, row_count=i)
                for i in range(n)]


def test_a_fresh_chain_verifies(db_engine):
    append(db_engine)
    with db_engine.connect() as conn:
        result = audit.verify(conn)
    assert result.ok and result.checked == 3


def test_updates_and_deletes_are_refused(db_engine):
    ids = append(db_engine)
    for statement in ("update ispflow.audit_log set actor = 'mallory' where id = :id",
                      "delete from ispflow.audit_log where id = :id"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with db_engine.begin() as conn:
                conn.execute(sa.text(statement), {"id": ids[1]})


def test_tampering_by_a_superuser_is_detected(db_engine):
    ids = append(db_engine)
    with db_engine.begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))  # bypasses the trigger
        conn.execute(sa.text("update ispflow.audit_log set row_count = 0 where id = :id"), {"id": ids[2]})
    with db_engine.connect() as conn:
        result = audit.verify(conn)
    assert not result.ok and result.broken_at == ids[2]


def test_a_removed_entry_in_the_middle_is_detected(db_engine):
    ids = append(db_engine)
    with db_engine.begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text("delete from ispflow.audit_log where id = :id"), {"id": ids[1]})
    with db_engine.connect() as conn:
        result = audit.verify(conn)
    assert not result.ok and result.broken_at == ids[2]


def test_retention_removes_only_expired_entries_and_the_rest_still_verifies(db_engine):
    append(db_engine)
    with db_engine.begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text("update ispflow.audit_log set at = at - interval '10 years' where id = 1"))
    with db_engine.begin() as conn:
        removed = audit.delete_expired(conn, datetime.now(timezone.utc) - timedelta(days=365 * 5))
    assert removed == 1
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ispflow.audit_log")).scalar() == 2
        assert audit.verify(conn).ok
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with db_engine.begin() as conn:  # the permission does not outlive the retention transaction
            conn.execute(sa.text("delete from ispflow.audit_log"))
