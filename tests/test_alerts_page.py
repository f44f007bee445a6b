"""The alerts page: rules and history for admins and technicians; admins manage rules."""

import sqlalchemy as sa

from ispflow.alerts.rules import parse_rule, save_rule
from ispflow.testing import csrf_token

from .alert_receivers import WebhookReceiver

RULE = {"name": "clocks", "kind": "router_clock", "max_skew_s": "3", "cooldown_minutes": "30",
        "email": "", "webhook": ""}


def rule_ids(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("select id from ispflow.alert_rules order by id")).scalars().all()


def test_admins_add_a_rule_and_it_is_listed_and_audited(auth, client, db_engine):
    auth.login("admin")
    page = client.get("/netflow/alerts")
    response = client.post("/netflow/alerts", data={**RULE, "csrf_token": csrf_token(page)})
    assert response.status_code == 302
    listed = client.get("/netflow/alerts").data.decode()
    assert "A router clock out of sync (max_skew_s=3.0)" in listed and "30 min" in listed
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select action from ispflow.audit_log")).scalar() == "alerts.rule"


def test_a_bad_rule_is_explained_next_to_its_field(auth, client, db_engine):
    auth.login("admin")
    page = client.get("/netflow/alerts")
    response = client.post("/netflow/alerts", data={**RULE, "kind": "subscriber_rate", "minutes": "x",
                                                    "csrf_token": csrf_token(page)})
    assert response.status_code == 400
    assert "&#39;x&#39; is not a whole number." in response.data.decode()
    assert "Threshold mbps is required for this kind." in response.data.decode()
    assert rule_ids(db_engine) == []


def test_technicians_see_rules_and_history_but_cannot_add(auth, client, db_engine):
    with db_engine.begin() as conn:
        save_rule(conn, parse_rule(RULE))
    auth.login("technician")
    page = client.get("/netflow/alerts")
    assert b"clocks" in page.data and b'id="rule-form"' not in page.data
    assert client.post("/netflow/alerts", data={**RULE, "name": "other",
                                                "csrf_token": csrf_token(page)}).status_code == 403
    assert client.post(f"/netflow/alerts/{rule_ids(db_engine)[0]}/delete",
                       data={"csrf_token": csrf_token(page)}).status_code == 403


def test_admins_send_a_test_and_remove_a_rule(auth, client, db_engine):
    with WebhookReceiver() as receiver:
        with db_engine.begin() as conn:
            rule = save_rule(conn, parse_rule({**RULE, "webhook": receiver.url}))
        auth.login("admin")
        token = csrf_token(client.get("/netflow/alerts"))
        tested = client.post(f"/netflow/alerts/{rule.id}/test", data={"csrf_token": token}, follow_redirects=True)
        assert "webhook sent (HTTP 204)" in tested.data.decode()
        assert receiver.received[0][2]["rule"] == "clocks"
    assert client.post(f"/netflow/alerts/{rule.id}/delete", data={"csrf_token": token}).status_code == 302
    assert rule_ids(db_engine) == []


def test_rule_buttons_need_the_csrf_token(auth, client, db_engine):
    with db_engine.begin() as conn:
        rule = save_rule(conn, parse_rule(RULE))
    auth.login("admin")
    assert client.post(f"/netflow/alerts/{rule.id}/delete").status_code == 400
    assert rule_ids(db_engine) == [rule.id]
