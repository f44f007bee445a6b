"""Switching the module off in its settings hides it and stops collection and router checks;
switching it on starts everything again without a restart. Retention and audit keep working."""
import time

import pytest
import sqlalchemy as sa
from flask import Flask, render_template_string
from sqlalchemy.orm import Session

from ispflow import CurrentUser, ISPFlow, audit, module_settings
from tests import synthetic
from ispflow.retention.jobs import run_retention
from ispflow.routers import inventory
from ispflow.routers.jobs import check_all_routers
from ispflow.testing import csrf_token

from .decode_helpers import EXPORT
from .fakes.fixtures import ENCRYPTION_KEY, TIMEOUT_S
from .netflow_tools import send
from .test_module_settings import FORM
from .test_retention import NOW, RECENT, WELL_PAST, add_flows, flow_times, job_settings  # noqa: F401


def switch(engine, enabled: bool) -> None:
    with engine.begin() as conn:
        current = module_settings.load(conn)
        module_settings.save(conn, module_settings.ModuleSettings(
            **{**current.__dict__, "enabled": enabled}))


def submit_settings(client, enabled: bool):
    token = csrf_token(client.get("/netflow/settings"))
    data = {k: v for k, v in FORM.items() if k != "enabled" or enabled}
    return client.post("/netflow/settings", data={**data, "csrf_token": token})


# -- the panel --------------------------------------------------------------------------------

def test_switched_off_the_standalone_panel_shows_no_menu_entry(auth, client, db_engine):
    auth.login("admin")
    assert b'href="/netflow/status"' in client.get("/netflow/settings").data
    switch(db_engine, False)
    page = client.get("/netflow/settings").data
    assert b"ispflow-nav" in page and b'href="/netflow/status"' not in page and b'href="/netflow/"' not in page


def test_switched_off_the_host_navigation_gets_no_entry(database_url, db_engine):
    host = Flask("host_panel")
    host.config.update(SECRET_KEY="host", ISPFLOW_DATABASE_URL=database_url)
    extension = ISPFlow()
    extension.user_loader(lambda: CurrentUser("carol", "admin"))
    extension.init_app(host)
    nav = "{% for endpoint, label in ispflow_menu() %}{{ label }};{% endfor %}"
    with host.test_request_context("/"):
        assert "Status;" in render_template_string(nav)
    switch(db_engine, False)
    with host.test_request_context("/"):
        assert render_template_string(nav) == ""
    with host.app_context():
        from ispflow.extension import db

        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("role, page", [("admin", "/netflow/status"), ("compliance", "/netflow/search"),
                                        ("technician", "/netflow/routers"), ("customer", "/netflow/my")])
def test_switched_off_every_page_answers_not_enabled(auth, client, db_engine, role, page):
    switch(db_engine, False)
    auth.login(role)
    response = client.get(page)
    assert response.status_code == 404
    assert b"The NetFlow module is not enabled" in response.data
    assert (b'href="/netflow/settings"' in response.data) == (role == "admin")


def test_switched_off_the_settings_page_still_opens_and_says_what_is_off(auth, client, db_engine):
    switch(db_engine, False)
    auth.login("admin")
    response = client.get("/netflow/settings")
    assert response.status_code == 200 and b'id="module-off"' in response.data


def test_switched_off_anonymous_users_are_still_sent_to_log_in(client, db_engine):
    switch(db_engine, False)
    assert client.get("/netflow/search").status_code == 302


def test_switched_off_no_banner_is_shown(auth, client, db_engine):
    auth.login("admin")
    assert b"ispflow-banner" in client.get("/netflow/settings").data  # no collector runs in this test
    submit_settings(client, enabled=False)
    assert b"ispflow-banner" not in client.get("/netflow/settings").data


def test_switching_off_and_on_is_audited_and_takes_effect_at_once(auth, client, db_engine):
    auth.login("admin")
    submit_settings(client, enabled=False)
    assert client.get("/netflow/status").status_code == 404
    submit_settings(client, enabled=True)
    assert client.get("/netflow/status").status_code == 200
    with db_engine.connect() as conn:
        entries = conn.execute(sa.text("select action, actor from ispflow.audit_log "
                                       "where action like 'module-%' order by id")).all()
        assert audit.verify(conn).ok
    assert [tuple(e) for e in entries] == [("module-disabled", "admin-user"), ("module-enabled", "admin-user")]


# -- the collector ----------------------------------------------------------------------------

def test_switched_off_the_collector_stores_nothing_and_counts_the_packets(collector, db_engine):
    switch(db_engine, False)
    time.sleep(1.2)  # the collector reads the switch at every heartbeat (0.5 s here)
    send(synthetic.v5_packets(synthetic.generate_flows(3, seed=1), export_time=EXPORT), collector.ports()[0])
    deadline = time.monotonic() + 10
    while collector.counters["module_disabled_packets"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert collector.counters["module_disabled_packets"] == 1
    assert collector.counters["records"] == 0
    assert collector.wait_for_flows(db_engine, 1, timeout=1.0) == []


def test_switched_on_again_the_collector_stores_without_a_restart(collector, db_engine):
    switch(db_engine, False)
    time.sleep(1.2)
    switch(db_engine, True)
    time.sleep(1.2)
    send(synthetic.v5_packets(synthetic.generate_flows(3, seed=1), export_time=EXPORT), collector.ports()[0])
    assert len(collector.wait_for_flows(db_engine, 3)) == 3


# -- jobs -------------------------------------------------------------------------------------

@pytest.fixture
def router_on_fake(mikrotik, db_engine, database_url, redis_url, monkeypatch):
    from ispflow.config import Settings

    monkeypatch.setenv("ISPFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("ISPFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("ISPFLOW_ENCRYPTION_KEY", ENCRYPTION_KEY)
    fake = mikrotik()
    settings = Settings.from_env()
    with Session(db_engine, expire_on_commit=False) as db:
        inventory.add_router(db, settings, name="edge-1", vendor="mikrotik", host="127.0.0.1", port=fake.port,
                           username="admin", password="secret", collector="192.0.2.10:2055", timeout_s=TIMEOUT_S)
        db.commit()
    return fake


def test_switched_off_routers_are_not_checked(router_on_fake, db_engine):
    switch(db_engine, False)
    assert check_all_routers() == {}
    assert router_on_fake.commands == []


def test_switched_on_again_routers_are_checked(router_on_fake, db_engine):
    switch(db_engine, False)
    switch(db_engine, True)
    assert list(check_all_routers()) == ["edge-1"]
    assert router_on_fake.commands


def test_switched_off_retention_still_deletes_expired_flows(db_engine, job_settings):  # noqa: F811
    switch(db_engine, False)
    add_flows(db_engine, WELL_PAST, RECENT)
    run_retention(job_settings, now=NOW)
    assert flow_times(db_engine) == [RECENT]
