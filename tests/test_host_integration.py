"""A host ISP panel mounts the extension and plugs in its users and subscriber directory."""
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from flask import Flask

from ispflow import Assignment, CurrentUser, ISPFlow
from ispflow.testing import csrf_token


@pytest.fixture
def host(database_url, db_engine):
    app = Flask("host_panel")
    app.config.update(SECRET_KEY="host", ISPFLOW_DATABASE_URL=database_url, ISPFLOW_URL_PREFIX="/isp/netflow")
    ispflow = ISPFlow()
    logged_in = {"user": None}

    @ispflow.user_loader
    def current_user():
        return logged_in["user"]

    @ispflow.assignments_loader
    def assignments():
        return [Assignment.parse("HOST-7", "fiber-100", "198.51.100.7", "2026-01-01T00:00:00Z")]

    ispflow.init_app(app)
    app.logged_in = logged_in
    yield app
    with app.app_context():
        from ispflow.extension import db

        db.session.remove()
        db.engine.dispose()


def test_host_gets_the_blueprint_under_its_prefix(host):
    assert host.url_map.bind("localhost").match("/isp/netflow/subscribers") == ("ispflow.subscribers", {})


def test_host_user_callback_decides_access(host):
    client = host.test_client()
    assert client.get("/isp/netflow/subscribers").status_code == 401
    host.logged_in["user"] = CurrentUser("bob", "technician")
    assert client.get("/isp/netflow/subscribers").status_code == 403
    host.logged_in["user"] = CurrentUser("carol", "admin")
    assert client.get("/isp/netflow/subscribers").status_code == 200


def test_host_directory_is_synchronised_and_answers_who(host):
    from ispflow.cli import subscribers_sync

    runner = host.test_cli_runner()
    result = runner.invoke(subscribers_sync)
    assert "Synchronised 1 assignments" in result.output
    host.logged_in["user"] = CurrentUser("carol", "admin")
    client = host.test_client()
    token = csrf_token(client.get("/isp/netflow/subscribers"))
    page = client.post("/isp/netflow/subscribers",
                       data={"csrf_token": token, "ip": "198.51.100.7", "at": "2026-06-01T00:00:00Z"}).data
    assert b"account <strong>HOST-7</strong>" in page and b"fiber-100" in page


def test_a_sync_is_audited_with_its_row_count_and_a_sha256_of_the_rows(host, db_engine):
    from ispflow.cli import subscribers_sync
    from ispflow.subscribers import rows_sha256

    host.test_cli_runner().invoke(subscribers_sync)
    with db_engine.connect() as conn:
        [entry] = conn.execute(sa.text("select row_count, criteria from ispflow.audit_log "
                                       "where action = 'subscribers.sync'")).all()
    expected = rows_sha256([Assignment.parse("HOST-7", "fiber-100", "198.51.100.7", "2026-01-01T00:00:00Z")])
    assert entry.row_count == 1 and entry.criteria["sha256"] == expected


def test_a_customer_needs_an_account():
    with pytest.raises(ValueError, match="account"):
        CurrentUser("dave", "customer")


def test_pages_extend_the_hosts_base_template(database_url, db_engine, tmp_path):
    (tmp_path / "host_base.html").write_text(
        "<html><body><div id='host-chrome'>HOST</div>{% block content %}{% endblock %}</body></html>"
    )
    app = Flask("host_panel", template_folder=str(tmp_path))
    app.config.update(SECRET_KEY="host", ISPFLOW_DATABASE_URL=database_url, ISPFLOW_BASE_TEMPLATE="host_base.html")
    ispflow = ISPFlow(app)
    ispflow.user_loader(lambda: CurrentUser("erin", "customer", account="ACC-9"))
    page = app.test_client().get("/netflow/my").data
    assert b"id='host-chrome'" in page and b"ACC-9" in page
    with app.app_context():
        from ispflow.extension import db

        db.session.remove()
        db.engine.dispose()
