"""Admins read the audit log and verify its chain; nobody else sees it."""
import pytest
import sqlalchemy as sa

from ispflow import audit
from ispflow.testing import csrf_token


@pytest.fixture
def entries(db_engine):
    with db_engine.begin() as conn:
        for i in range(3):
            audit.record(conn, actor="olga", role="compliance", action="search", case_ref=f"CASE-{i}",
                         criteria={"ip": "100.64.0.10/32"}, row_count=10 + i)
    return db_engine


def test_admin_sees_entries_newest_first(auth, client, entries):
    auth.login("admin")
    page = client.get("/netflow/audit").data.decode()
    assert page.index("CASE-2") < page.index("CASE-1") < page.index("CASE-0")
    assert "ip=100.64.0.10/32" in page and "olga" in page


def test_verify_button_reports_an_intact_chain(auth, client, entries):
    auth.login("admin")
    page = client.get("/netflow/audit")
    result = client.post("/netflow/audit", data={"csrf_token": csrf_token(page)}).data.decode()
    assert "Chain intact: 3 entries verified." in result


def test_verify_button_reports_tampering(auth, client, entries, owner_engine):
    with owner_engine.begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text("delete from ispflow.audit_log where id = 2"))
    auth.login("admin")
    page = client.get("/netflow/audit")
    result = client.post("/netflow/audit", data={"csrf_token": csrf_token(page)}).data.decode()
    assert "Chain broken: Entry 3 does not follow entry 1" in result


def test_older_entries_are_reached_page_by_page(auth, client, entries, monkeypatch):
    with entries.begin() as conn:
        for i in range(3, 105):
            audit.record(conn, actor="olga", role="compliance", action="who", case_ref=f"CASE-{i}")
    auth.login("admin")
    first = client.get("/netflow/audit").data.decode()
    assert "CASE-104<" in first and "CASE-4<" not in first
    older = client.get("/netflow/audit?before=6").data.decode()
    assert "CASE-4<" in older and "CASE-0<" in older and "CASE-5<" not in older


@pytest.mark.parametrize("role", ["technician", "compliance", "customer"])
def test_other_roles_cannot_post_verify(auth, client, entries, role):
    auth.login(role)
    assert client.post("/netflow/audit", data={}).status_code == 403


def test_verify_button_names_entries_removed_from_the_end_against_the_checkpoint(app, auth, client, entries,
                                                                                 owner_engine):
    with entries.connect() as conn:
        audit.write_checkpoint(conn, audit.checkpoint_path(app.extensions["ispflow"].settings))
    with owner_engine.begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text("delete from ispflow.audit_log where id = 3"))
    auth.login("admin")
    page = client.get("/netflow/audit")
    result = client.post("/netflow/audit", data={"csrf_token": csrf_token(page)}).data.decode()
    assert "Chain broken: Entries were removed from the end" in result and "(removed-end)" in result
