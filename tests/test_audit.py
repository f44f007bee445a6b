"""The audit trail: a keyed chain anchored outside the database, so every change or removal shows.

The attacks are made as the schema's owner (a superuser here), the only one able to make them:
the app role is refused (tests/test_database_roles.py).
"""
import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from ispflow import audit
from ispflow.config import ConfigError, Settings
from ispflow.jobs import PERIODIC_JOBS


def append(engine, n=3):
    with engine.begin() as conn:
        return [audit.record(conn, actor="olga", role="compliance", action="search", case_ref=f"CASE-{i}",
                             criteria={"ip": "198.51.100.7", "from": "2026-01-01T00:00:00+00:00"}, row_count=i)
                for i in range(n)]


def verify(engine, anchors=(), key=None):
    with engine.connect() as conn:
        return audit.verify(conn, anchors, key=key)


def kinds(result):
    return [(p.kind, p.entry) for p in result.problems]


def tamper(owner_engine, statement, **params):
    """As the owner, with the append-only trigger bypassed: what an attacker with the database can do."""
    with owner_engine.begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text(statement), params)


def checkpoint(engine, path):
    with engine.connect() as conn:
        return audit.write_checkpoint(conn, str(path))


def test_a_fresh_chain_verifies(db_engine):
    append(db_engine)
    result = verify(db_engine)
    assert result.ok and result.checked == 3


def test_the_chain_holds_only_with_its_key(db_engine):
    append(db_engine)
    result = verify(db_engine, key=b"another key")
    assert not result.ok and kinds(result) == [("changed", 1), ("changed", 2), ("changed", 3)]


def test_a_changed_entry_is_detected(db_engine, owner_engine):
    ids = append(db_engine)
    tamper(owner_engine, "update ispflow.audit_log set row_count = 0 where id = :id", id=ids[2])
    result = verify(db_engine)
    assert not result.ok and result.broken_at == ids[2]
    assert kinds(result) == [("changed", ids[2])]


def test_an_entry_removed_from_the_middle_is_detected(db_engine, owner_engine):
    ids = append(db_engine)
    tamper(owner_engine, "delete from ispflow.audit_log where id = :id", id=ids[1])
    result = verify(db_engine)
    assert kinds(result) == [("removed-middle", ids[2])]
    assert f"Entry {ids[2]} does not follow entry {ids[0]}" in result.message


def test_rechaining_after_a_removal_without_the_key_is_detected(db_engine, owner_engine):
    ids = append(db_engine)
    tamper(owner_engine, "delete from ispflow.audit_log where id = :id", id=ids[1])
    tamper(owner_engine, "update ispflow.audit_log set prev_hash = (select hash from ispflow.audit_log where id = :a) "
                         "where id = :b", a=ids[0], b=ids[2])
    assert kinds(verify(db_engine)) == [("changed", ids[2])]


def test_entries_removed_from_the_start_are_detected(db_engine, owner_engine):
    ids = append(db_engine)
    tamper(owner_engine, "delete from ispflow.audit_log where id = :id", id=ids[0])
    result = verify(db_engine)
    assert kinds(result) == [("removed-start", ids[1])]
    assert "no retention recorded deleting them" in result.message


def test_entries_removed_from_the_end_are_detected_against_a_checkpoint(db_engine, owner_engine, tmp_path):
    ids = append(db_engine)
    checkpoint(db_engine, tmp_path / "checkpoints")
    tamper(owner_engine, "delete from ispflow.audit_log where id >= :id", id=ids[1])
    result = verify(db_engine, audit.read_checkpoints(str(tmp_path / "checkpoints")))
    assert kinds(result) == [("removed-end", ids[2])]
    assert f"anchors entry {ids[2]}, but the log ends at {ids[0]}" in result.message


def test_an_emptied_log_is_detected_against_a_checkpoint(db_engine, owner_engine, tmp_path):
    ids = append(db_engine)
    checkpoint(db_engine, tmp_path / "checkpoints")
    tamper(owner_engine, "delete from ispflow.audit_log")
    assert kinds(verify(db_engine, audit.read_checkpoints(str(tmp_path / "checkpoints")))) == [("removed-end", ids[2])]


def test_an_entry_replaced_after_a_checkpoint_is_detected_even_with_a_valid_link(db_engine, owner_engine, tmp_path):
    ids = append(db_engine)
    checkpoint(db_engine, tmp_path / "checkpoints")
    tamper(owner_engine, "delete from ispflow.audit_log where id = :id", id=ids[2])
    with db_engine.begin() as conn:  # a fresh, validly keyed entry takes the removed one's place
        replacement = audit.record(conn, actor="olga", action="search")
    tamper(owner_engine, "update ispflow.audit_log set id = :old where id = :new", old=ids[2], new=replacement)
    result = verify(db_engine, audit.read_checkpoints(str(tmp_path / "checkpoints")))
    assert ("anchor-mismatch", ids[2]) in kinds(result)


def test_a_checkpoint_line_altered_in_the_file_is_reported(db_engine, tmp_path):
    append(db_engine)
    path = tmp_path / "checkpoints"
    checkpoint(db_engine, path)
    line = json.loads(path.read_text())
    path.write_text(json.dumps({**line, "id": line["id"] - 1}) + "\n")
    result = verify(db_engine, audit.read_checkpoints(str(path)))
    assert [p.kind for p in result.problems] == ["anchor-forged"]


def test_checkpoints_append_the_current_head(db_engine, tmp_path):
    path = tmp_path / "state" / audit.CHECKPOINT_FILE
    first = append(db_engine, 1)
    assert checkpoint(db_engine, path).id == first[0]
    second = append(db_engine, 1)
    assert checkpoint(db_engine, path).id == second[0]
    assert [a.id for a in audit.read_checkpoints(str(path))] == [first[0], second[0]]


def test_the_checkpoint_job_writes_under_the_state_dir_and_runs_hourly(db_engine, database_url, tmp_path):
    ids = append(db_engine)
    settings = Settings.from_env(DATABASE_URL=database_url, STATE_DIR=str(tmp_path))
    assert audit.checkpoint_job(settings)["id"] == ids[-1]
    assert [a.id for a in audit.anchors_of(settings)] == [ids[-1]]
    assert [j.interval for j in PERIODIC_JOBS if j.function == "ispflow.audit:checkpoint_job"] == [3600]


def test_export_manifests_are_anchors(db_engine, owner_engine, tmp_path):
    ids = append(db_engine)
    with db_engine.connect() as conn:
        head = audit.head(conn)
    (tmp_path / "ispflow-export-1.manifest.json").write_text(json.dumps({"audit_head": head.as_dict()}))
    tamper(owner_engine, "delete from ispflow.audit_log where id = :id", id=ids[2])
    settings = Settings.from_env(EXPORT_DIR=str(tmp_path), STATE_DIR=str(tmp_path / "state"))
    result = verify(db_engine, audit.anchors_of(settings))
    assert kinds(result) == [("removed-end", ids[2])] and "ispflow-export-1.manifest.json" in result.message


def age(owner_engine, ids, years=10):
    tamper(owner_engine, f"update ispflow.audit_log set at = at - interval '{years} years' where id = any(:ids)",
           ids=list(ids))


def expire(owner_engine, years=5):
    with owner_engine.begin() as conn:
        return audit.delete_expired(conn, datetime.now(timezone.utc) - timedelta(days=365 * years),
                                    actor="system:retention")


def test_retention_records_the_first_entry_it_kept_and_the_log_still_verifies(db_engine, owner_engine):
    ids = append(db_engine)
    age(owner_engine, ids[:1])
    assert expire(owner_engine) == 1
    with db_engine.connect() as conn:
        rows = conn.execute(sa.text("select id, hash, action, criteria from ispflow.audit_log order by id")).all()
    assert [r.id for r in rows][:2] == ids[1:]
    assert rows[-1].action == "retention"
    assert rows[-1].criteria["first_kept"] == {"id": ids[1], "hash": rows[0].hash}
    assert verify(db_engine).ok


def test_retention_that_deletes_every_entry_leaves_a_log_that_verifies(db_engine, owner_engine):
    ids = append(db_engine)
    age(owner_engine, ids)
    assert expire(owner_engine) == 3
    result = verify(db_engine)
    assert result.ok and result.checked == 1


def test_entries_removed_beyond_what_retention_deleted_are_detected(db_engine, owner_engine):
    ids = append(db_engine)
    age(owner_engine, ids[:1])
    expire(owner_engine)
    tamper(owner_engine, "delete from ispflow.audit_log where id = :id", id=ids[1])
    result = verify(db_engine)
    assert kinds(result) == [("removed-start", ids[2])]
    assert f"kept entries from {ids[1]}" in result.message


def test_retention_leaves_a_checkpoint_of_a_deleted_entry_unreported(db_engine, owner_engine, tmp_path):
    ids = append(db_engine)
    checkpoint(db_engine, tmp_path / "checkpoints")
    age(owner_engine, ids)
    expire(owner_engine)
    assert verify(db_engine, audit.read_checkpoints(str(tmp_path / "checkpoints"))).ok


def test_the_key_is_the_audit_key_or_one_derived_from_the_secret_for_this_purpose_alone():
    derived = audit.audit_key(Settings(SECRET_KEY="s3cret"))
    assert derived not in (b"s3cret", audit.audit_key(Settings(SECRET_KEY="other")))
    assert audit.audit_key(Settings(SECRET_KEY="s3cret", AUDIT_KEY="k")) == b"k"
    with pytest.raises(ConfigError, match="ISPFLOW_AUDIT_KEY"):
        audit.audit_key(Settings(SECRET_KEY="", AUDIT_KEY=""))


def test_the_app_role_is_protected_and_the_owner_is_reported_as_not(db_engine, owner_engine):
    with db_engine.connect() as conn:
        assert audit.unprotected(conn) is None
    with owner_engine.connect() as conn:
        assert "can delete audit entries" in audit.unprotected(conn)
