"""Admins trust and untrust exporters on the status page: a POST form with CSRF, audited."""
import sqlalchemy as sa

from ispflow.testing import csrf_token


def seen(db_engine, address="192.0.2.44", trusted=False):
    with db_engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.exporters (address, packets, trusted, dropped) "
                             "values (:a, 12, :t, '{\"untrusted_packets\": 12}')"), {"a": address, "t": trusted})


def trusted(db_engine, address="192.0.2.44"):
    with db_engine.connect() as conn:
        return conn.execute(sa.text("select trusted from ispflow.exporters where address = cast(:a as inet)"),
                            {"a": address}).scalar()


def test_the_status_page_shows_an_untrusted_sender_with_its_dropped_packets_and_a_trust_button(auth, client, db_engine):
    seen(db_engine)
    auth.login("admin")
    page = client.get("/netflow/status").get_data(as_text=True)
    assert "192.0.2.44" in page and "not trusted" in page
    assert "untrusted packets: <strong>12</strong>" in page
    assert ">Trust</button>" in page


def test_a_technician_sees_the_trust_state_but_no_form(auth, client, db_engine):
    seen(db_engine)
    auth.login("technician")
    page = client.get("/netflow/status").get_data(as_text=True)
    assert "not trusted" in page and ">Trust</button>" not in page


def test_an_admin_trusts_a_sender_and_the_audit_log_says_who(auth, client, db_engine):
    seen(db_engine)
    auth.login("admin")
    token = csrf_token(client.get("/netflow/status"))
    response = client.post("/netflow/status/exporters",
                           data={"address": "192.0.2.44", "trusted": "yes", "csrf_token": token})
    assert response.status_code == 302
    assert trusted(db_engine) is True
    with db_engine.connect() as conn:
        entry = conn.execute(sa.text("select action, role, criteria from ispflow.audit_log")).one()
    assert (entry.action, entry.role, entry.criteria) == ("exporter.trust", "admin", {"address": "192.0.2.44"})


def test_an_admin_untrusts_a_sender(auth, client, db_engine):
    seen(db_engine, trusted=True)
    auth.login("admin")
    token = csrf_token(client.get("/netflow/status"))
    client.post("/netflow/status/exporters", data={"address": "192.0.2.44", "trusted": "no", "csrf_token": token})
    assert trusted(db_engine) is False


def test_trusting_without_the_csrf_token_changes_nothing(auth, client, db_engine):
    seen(db_engine)
    auth.login("admin")
    client.post("/netflow/status/exporters", data={"address": "192.0.2.44", "trusted": "yes"})
    assert trusted(db_engine) is False


def test_the_flows_check_names_recent_untrusted_senders(auth, client, db_engine):
    seen(db_engine)
    with db_engine.begin() as conn:
        conn.execute(sa.text("update ispflow.exporters set last_seen = now()"))
    auth.login("admin")
    page = client.get("/netflow/status").get_data(as_text=True)
    assert "1 sender(s) (192.0.2.44) sent packets that were dropped because they are not trusted exporters." in page
