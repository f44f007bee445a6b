"""The app role (panel, collector, worker) may add evidence and read it, never change or destroy it.

Every forbidden operation is attempted as the app role and must be refused by PostgreSQL; the
set-up command creates the role idempotently.
"""
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ispflow import audit
from ispflow.database import engine_for
from ispflow.database_privileges import grant_app_role

ISPFLOW = str(Path(sys.executable).with_name("ispflow"))
MOMENT = datetime(2026, 1, 10, 10, tzinfo=timezone.utc)


@pytest.fixture
def evidence(db_engine):
    """One audit entry, one flow of a subscriber and one NAT event, added by the app role as the
    collector would."""
    with db_engine.begin() as conn:
        audit.record(conn, actor="olga", role="compliance", action="search", case_ref="CASE-1")
        holder = conn.execute(sa.text("insert into ispflow.holders (account, service) values ('ACC-1', 'fibre') "
                                      "returning id")).scalar()
        conn.execute(sa.text("insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, "
                             "src_port, dst_port, protocol, bytes, packets, holder) values (:t, :t, 1, '100.64.0.1', "
                             "'198.51.100.1', 40000, 443, 6, 100, 1, :holder)"), {"t": MOMENT, "holder": holder})
        conn.execute(sa.text("insert into ispflow.nat_events (ts, exporter_id, event) values (:t, 1, 1)"),
                     {"t": MOMENT})
    return db_engine


def refused(engine, statement):
    """The statement as the app role raises a PostgreSQL error (and changes nothing)."""
    with pytest.raises(sa.exc.DBAPIError) as error:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    return str(error.value.orig)


def test_the_app_role_is_no_superuser_and_owns_nothing(db_engine):
    with db_engine.connect() as conn:
        superuser = conn.execute(sa.text("select rolsuper from pg_roles where rolname = current_user")).scalar()
        owned = conn.execute(sa.text("select count(*) from pg_class where relowner = "
                                     "(select oid from pg_roles where rolname = current_user)")).scalar()
    assert superuser is False and owned == 0


def test_the_app_role_adds_and_reads_evidence(evidence):
    with evidence.connect() as conn:
        counts = [conn.execute(sa.text(f"select count(*) from ispflow.{t}")).scalar()
                  for t in ("audit_log", "flows", "nat_events")]
    assert counts == [1, 1, 1]


@pytest.mark.parametrize("statement", [
    "update ispflow.audit_log set actor = 'mallory'",
    "delete from ispflow.audit_log",
    "truncate ispflow.audit_log",
    "alter table ispflow.audit_log disable trigger audit_log_append_only",
    "drop table ispflow.audit_log",
    "select setval(pg_get_serial_sequence('ispflow.audit_log', 'id'), 1)",
    "update ispflow.audit_chain set keyed_from = 1000000",
    "insert into ispflow.audit_chain (keyed_from) values (1)",
    "create table ispflow.audit_log_copy (id bigint)",
])
def test_the_app_role_cannot_change_or_remove_audit_entries(evidence, statement):
    message = refused(evidence, statement)
    assert "permission denied" in message or "must be owner" in message


def test_the_app_role_cannot_switch_off_the_triggers(evidence):
    assert "permission denied" in refused(evidence, "set session_replication_role = replica")


def test_the_retention_setting_gives_the_app_role_no_way_to_delete(evidence):
    message = refused(evidence, "select set_config('ispflow.audit_retention_before', '2999-01-01', true); "
                                "delete from ispflow.audit_log")
    assert "permission denied" in message


@pytest.mark.parametrize("table", ["flows", "nat_events"])
@pytest.mark.parametrize("statement", [
    "update ispflow.{table} set exporter_id = 2",
    "delete from ispflow.{table}",
    "truncate ispflow.{table}",
    "select drop_chunks('ispflow.{table}', older_than => now() + interval '1 year')",
])
def test_the_app_role_cannot_change_or_remove_flows_and_nat_events(evidence, table, statement):
    message = refused(evidence, statement.format(table=table))
    assert "permission denied" in message or "must be owner" in message
    with evidence.connect() as conn:
        assert conn.execute(sa.text(f"select count(*) from ispflow.{table}")).scalar() == 1


@pytest.mark.parametrize("statement", [
    "update ispflow.holders set account = 'ACC-2'",
    "delete from ispflow.holders",
    "truncate ispflow.holders",
    "update ispflow.flows set holder = holder + 1",
    "drop view ispflow.flow_records",
    "create or replace view ispflow.flow_records as select * from ispflow.flows",
])
def test_the_app_role_cannot_change_whose_flow_a_flow_was(evidence, statement):
    """A flow names its subscriber by a key into holders: neither the key nor the names move."""
    message = refused(evidence, statement)
    assert "permission denied" in message or "must be owner" in message
    with evidence.connect() as conn:
        assert conn.execute(sa.text("select account, service from ispflow.flow_records")).one() == ("ACC-1", "fibre")


@pytest.mark.parametrize("statement", ["delete from {chunk}", "update {chunk} set exporter_id = 2", "truncate {chunk}",
                                       "drop table {chunk}"])
def test_the_app_role_cannot_reach_around_the_hypertable_to_its_chunks(evidence, statement):
    with evidence.connect() as conn:
        chunk = conn.execute(sa.text("select format('%I.%I', chunk_schema, chunk_name) from "
                                     "timescaledb_information.chunks where hypertable_name = 'flows'")).scalar()
    message = refused(evidence, statement.format(chunk=chunk))
    assert "permission denied" in message or "must be owner" in message


def test_the_owner_can_still_do_retention_and_migrations(evidence, owner_engine):
    with owner_engine.begin() as conn:
        conn.execute(sa.text("select drop_chunks('ispflow.flows', older_than => now() + interval '1 year')"))
        assert conn.execute(sa.text("select count(*) from ispflow.flows")).scalar() == 0


@pytest.fixture
def new_role(owner_database_url):
    """An app role name no one has created yet; dropped afterwards with its privileges."""
    name = f"{make_url(owner_database_url).database}_new"
    yield name
    with engine_for(owner_database_url).begin() as conn:
        conn.execute(sa.text(f'drop owned by "{name}"'))
        conn.execute(sa.text(f'drop role "{name}"'))


def test_db_upgrade_creates_the_app_role_idempotently(owner_database_url, new_role, db_engine):
    url = make_url(owner_database_url).set(username=new_role).render_as_string(hide_password=False)
    env = {**os.environ, "ISPFLOW_DATABASE_URL": url}
    runs = [subprocess.run([ISPFLOW, "db", "upgrade"], capture_output=True, text=True, timeout=120, env=env)
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    assert refused(engine_for(url), "delete from ispflow.audit_log").startswith("permission denied")
    with engine_for(url).begin() as conn:
        audit.record(conn, actor="cli:test", action="search")
    engine_for(url).dispose()


def test_a_password_in_the_url_becomes_the_roles_password(owner_database_url, new_role, db_engine):
    url = make_url(owner_database_url).set(username=new_role, password="it's: a \\ secret")
    grant_app_role(owner_database_url, url.render_as_string(hide_password=False))
    with engine_for(owner_database_url).connect() as conn:
        stored = conn.execute(sa.text("select rolpassword from pg_authid where rolname = :n"), {"n": new_role}).scalar()
    assert stored and stored.startswith("SCRAM-SHA-256$")


def test_one_role_for_app_and_owner_is_allowed_with_a_warning(owner_database_url):
    assert "not protected" in grant_app_role(owner_database_url, owner_database_url)
