"""The router pages: access by role, the add/edit form, and the one-click flow through a real rq worker."""
import json
import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from rq import Queue, SimpleWorker
from sqlalchemy.orm import Session

from .fakes.fixtures import ENCRYPTION_KEY, TIMEOUT_S
from ispflow.config import Settings
from ispflow.database import engine_for
from ispflow.roles import ROLES
from ispflow.routers import actions, inventory, runs, status
from ispflow.routers.validation import InvalidRouter
from ispflow.routers.crypto import decrypt
from ispflow.routers.models import Router, RouterJob
from ispflow.testing import csrf_token

ALLOWED = {"admin", "technician"}
PASSWORD = "router-password-42"


def make_router(database_url, port=8728, **overrides) -> int:
    settings = Settings.from_env({}, DATABASE_URL=database_url, ENCRYPTION_KEY=ENCRYPTION_KEY)
    values = dict(name="edge-1", vendor="mikrotik", host="127.0.0.1", port=port, username="admin",
                  password=PASSWORD, collector="192.0.2.10:2055", timeout_s=TIMEOUT_S)
    values.update(overrides)
    with Session(engine_for(database_url)) as db:
        router = inventory.add_router(db, settings, **values)
        db.commit()
        return router.id


def form_data(**overrides):
    data = dict(name="edge-1", vendor="mikrotik", host="127.0.0.1", port="8728", username="admin",
                password=PASSWORD, interfaces="all", netflow_version="9", collector="192.0.2.10:2055",
                source_interface="", timeout_s=str(TIMEOUT_S))
    data.update(overrides)
    return data


def run_worker(redis_conn, monkeypatch, database_url, redis_url):
    monkeypatch.setenv("ISPFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("ISPFLOW_REDIS_URL", redis_url)
    SimpleWorker([Queue("ispflow", connection=redis_conn)], connection=redis_conn).work(burst=True)


@pytest.mark.parametrize("role", ROLES)
def test_router_pages_by_role(auth, client, database_url, role):
    router_id = make_router(database_url)
    with Session(engine_for(database_url)) as db:
        job = runs.create_job(db, db.get(Router, router_id), "check")
        db.commit()
        job_id = job.id
    auth.login(role)
    expected = 200 if role in ALLOWED else 403
    for page in ("/netflow/routers", "/netflow/routers/new", f"/netflow/routers/{router_id}",
                 f"/netflow/routers/{router_id}/edit", f"/netflow/routers/jobs/{job_id}.json"):
        assert client.get(page).status_code == expected, page


@pytest.mark.parametrize("role", ROLES)
def test_router_buttons_by_role(auth, client, database_url, redis_conn, role):
    router_id = make_router(database_url)
    auth.login(role)
    token = csrf_token(client.get("/netflow/routers/new")) if role in ALLOWED else "none"
    for action in ("provision", "check", "remove"):
        response = client.post(f"/netflow/routers/{router_id}/{action}", data={"csrf_token": token})
        assert response.status_code == (302 if role in ALLOWED else 403), action


def test_anonymous_users_are_sent_to_log_in(client, database_url):
    router_id = make_router(database_url)
    for page in (f"/netflow/routers/{router_id}", "/netflow/routers/jobs/1.json"):
        assert client.get(page).status_code == 302


def test_an_unknown_router_is_404(auth, client, db_engine):
    auth.login("technician")
    assert client.get("/netflow/routers/999").status_code == 404


def test_bad_fields_are_explained_next_to_the_field(auth, client, db_engine):
    auth.login("technician")
    token = csrf_token(client.get("/netflow/routers/new"))
    page = client.post("/netflow/routers/new", data={**form_data(collector="collector.example:2055"),
                                                      "csrf_token": token}).data.decode()
    field = re.search(r'<div class="field">\s*<label for="collector".*?</div>', page, re.S).group(0)
    assert "is not ADDRESS:PORT (an IP address, not a host name)" in field
    assert PASSWORD not in page


def test_cisco_without_interfaces_is_explained_at_the_interfaces_field(auth, client, db_engine):
    auth.login("admin")
    token = csrf_token(client.get("/netflow/routers/new"))
    page = client.post("/netflow/routers/new", data={**form_data(vendor="cisco_xe", port="22"),
                                                      "csrf_token": token}).data.decode()
    field = re.search(r'<div class="field">\s*<label for="interfaces".*?</div>', page, re.S).group(0)
    assert "Cisco IOS-XE (Flexible NetFlow) routers need the interfaces to watch" in field


def test_adding_a_router_shows_the_commands_it_will_get(auth, client, db_engine):
    auth.login("technician")
    token = csrf_token(client.get("/netflow/routers/new"))
    response = client.post("/netflow/routers/new", data={**form_data(), "csrf_token": token}, follow_redirects=True)
    page = response.data.decode()
    assert "Added router edge-1" in page
    assert "/ip traffic-flow target add dst-address=192.0.2.10 port=2055 version=9" in page
    assert PASSWORD not in page


def test_the_edit_form_never_shows_the_password_and_keeps_it_when_left_empty(auth, client, database_url):
    router_id = make_router(database_url)
    auth.login("admin")
    page = client.get(f"/netflow/routers/{router_id}/edit")
    assert PASSWORD.encode() not in page.data
    password_input = re.search(rb'<input[^>]*name="password"[^>]*>', page.data).group(0)
    assert b'value=""' in password_input or b"value=" not in password_input
    response = client.post(f"/netflow/routers/{router_id}/edit",
                           data={**form_data(password="", interfaces="ether1"), "csrf_token": csrf_token(page)},
                           follow_redirects=True)
    assert b"Saved edge-1" in response.data
    settings = Settings.from_env({}, ENCRYPTION_KEY=ENCRYPTION_KEY)

    with Session(engine_for(database_url)) as db:
        router = db.get(Router, router_id)
        assert decrypt(settings, router.secret) == PASSWORD
        assert router.interfaces == "ether1"


def router_audit(database_url):
    with engine_for(database_url).connect() as conn:
        return conn.execute(sa.text("select actor, role, action, criteria from ispflow.audit_log "
                                    "where action like 'router.%' order by id")).all()


def test_adding_a_router_is_audited_in_the_users_name(auth, client, database_url, db_engine):
    auth.login("technician")
    token = csrf_token(client.get("/netflow/routers/new"))
    client.post("/netflow/routers/new", data={**form_data(), "csrf_token": token})
    [entry] = router_audit(database_url)
    assert (entry.actor, entry.role, entry.action) == ("technician-user", "technician", "router.add")
    assert (entry.criteria["router"], entry.criteria["host"]) == ("edge-1", "127.0.0.1")


def test_an_edit_is_audited_with_the_fields_it_changed_never_the_password(auth, client, database_url):
    router_id = make_router(database_url)
    auth.login("admin")
    page = client.get(f"/netflow/routers/{router_id}/edit")
    client.post(f"/netflow/routers/{router_id}/edit",
                data={**form_data(password="new-password-77", interfaces="ether1"), "csrf_token": csrf_token(page)})
    entry = router_audit(database_url)[-1]
    assert (entry.actor, entry.action) == ("admin-user", "router.update")
    assert entry.criteria["changed"] == ["interfaces"] and entry.criteria["password_changed"] is True
    assert "new-password-77" not in json.dumps(entry.criteria)


def test_a_button_press_is_audited(auth, client, database_url, redis_conn):
    router_id = make_router(database_url)
    auth.login("admin")
    page = client.get(f"/netflow/routers/{router_id}")
    client.post(f"/netflow/routers/{router_id}/provision", data={"csrf_token": csrf_token(page)})
    entry = router_audit(database_url)[-1]
    assert (entry.actor, entry.action, entry.criteria["router"]) == ("admin-user", "router.provision", "edge-1")


def test_a_button_without_csrf_token_queues_nothing(auth, client, database_url, redis_conn):
    router_id = make_router(database_url)
    auth.login("technician")
    response = client.post(f"/netflow/routers/{router_id}/provision", data={}, follow_redirects=True)
    assert b"The form expired" in response.data
    with Session(engine_for(database_url)) as db:
        assert db.execute(sa.select(sa.func.count()).select_from(RouterJob)).scalar() == 0
    assert Queue("ispflow", connection=redis_conn).count == 0


def test_one_click_provisioning_runs_in_the_worker_and_the_page_shows_it_verified(
        auth, client, database_url, redis_url, redis_conn, monkeypatch, mikrotik, db_engine):
    fake = mikrotik(password=PASSWORD)
    auth.login("technician")
    token = csrf_token(client.get("/netflow/routers/new"))
    created = client.post("/netflow/routers/new", data={**form_data(port=str(fake.port)), "csrf_token": token})
    router_page = created.headers["Location"]

    queued = client.post(router_page + "/provision", data={"csrf_token": csrf_token(client.get(router_page))})
    job_url = queued.headers["Location"]
    job_id = int(job_url.rsplit("job=", 1)[1])
    status = json.loads(client.get(f"/netflow/routers/jobs/{job_id}.json").data)
    assert status["state"] == "queued" and not status["done"]

    run_worker(redis_conn, monkeypatch, database_url, redis_url)

    status = json.loads(client.get(f"/netflow/routers/jobs/{job_id}.json").data)
    assert status["state"] == "finished" and status["progress"] == 100, status
    assert "/ip traffic-flow target add dst-address=192.0.2.10 port=2055 version=9" in status["log"]
    page = client.get(job_url).data.decode()
    assert re.search(r'<td id="verified">yes', page)
    assert re.search(r'<td id="ntp">synchronised', page)
    assert len(fake.targets) == 1 and fake.traffic_flow["enabled"] == "yes"

    with db_engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.exporters (address, last_flow_at) values ('127.0.0.1', :now)"),
                     {"now": datetime.now(timezone.utc)})
    listing = client.get("/netflow/routers").data.decode()
    assert re.search(r'<td class="exporting">yes', listing)
    assert re.search(r'<td class="verified">yes', listing)


def test_check_and_remove_buttons_run_in_the_worker(auth, client, database_url, redis_url, redis_conn,
                                                   monkeypatch, mikrotik):
    fake = mikrotik(password=PASSWORD, ntp="unsynchronized")
    router_id = make_router(database_url, port=fake.port)
    auth.login("admin")
    page = f"/netflow/routers/{router_id}"
    client.post(page + "/provision", data={"csrf_token": csrf_token(client.get(page))})
    run_worker(redis_conn, monkeypatch, database_url, redis_url)
    client.post(page + "/check", data={"csrf_token": csrf_token(client.get(page))})
    run_worker(redis_conn, monkeypatch, database_url, redis_url)
    shown = client.get(page).data.decode()
    assert "not synchronised" in shown and "NOT evidence-grade" in shown
    client.post(page + "/remove", data={"csrf_token": csrf_token(client.get(page))})
    run_worker(redis_conn, monkeypatch, database_url, redis_url)
    assert fake.targets == []
    assert re.search(r'<td id="verified">no', client.get(page).data.decode())


def test_a_failed_job_shows_its_reason_on_the_page(auth, client, database_url, redis_url, redis_conn,
                                                  monkeypatch, mikrotik):
    fake = mikrotik(password="a-different-one")
    router_id = make_router(database_url, port=fake.port)
    auth.login("technician")
    page = f"/netflow/routers/{router_id}"
    client.post(page + "/provision", data={"csrf_token": csrf_token(client.get(page))})
    run_worker(redis_conn, monkeypatch, database_url, redis_url)
    shown = client.get(page).data.decode()
    assert "refused the username or password" in shown
    assert PASSWORD not in shown


def test_the_periodic_clock_check_runs_in_the_worker(database_url, redis_url, redis_conn, monkeypatch, mikrotik,
                                                     db_engine):
    from ispflow.jobs import PERIODIC_JOBS

    fake = mikrotik(password=PASSWORD, ntp="disabled")
    router_id = make_router(database_url, port=fake.port)
    periodic = next(job for job in PERIODIC_JOBS if job.name == "router-clocks")
    Queue("ispflow", connection=redis_conn).enqueue(periodic.function.replace(":", "."))
    run_worker(redis_conn, monkeypatch, database_url, redis_url)
    with Session(engine_for(database_url)) as db:
        router = db.get(Router, router_id)
        assert router.ntp_synced is False
        assert router.ntp_detail == "NTP client disabled"


def pin(database_url, router_id, key="ssh-rsa " + "QUFBQQ=="):
    with Session(engine_for(database_url)) as db:
        db.execute(sa.update(Router).where(Router.id == router_id).values(pinned_key=key,
                                                                          pinned_at=datetime.now(timezone.utc)))
        db.commit()


@pytest.mark.parametrize("role", ROLES)
def test_only_an_admin_may_re_pin_a_router_and_it_is_audited(auth, client, database_url, db_engine, role):
    router_id = make_router(database_url, vendor="cisco_ios", interfaces="Gi0/0")
    pin(database_url, router_id)
    auth.login(role)
    token = csrf_token(client.get("/netflow/routers/new")) if role in ALLOWED else "none"
    response = client.post(f"/netflow/routers/{router_id}/repin", data={"csrf_token": token})
    with db_engine.connect() as conn:
        key = conn.execute(sa.text("select pinned_key from ispflow.routers")).scalar()
        audited = conn.execute(sa.text("select actor, criteria from ispflow.audit_log where action = 'router.repin'")).all()
    if role == "admin":
        assert response.status_code == 302 and key is None
        assert audited[0].actor == "admin-user" and audited[0].criteria["previous_key"] == "ssh-rsa QUFBQQ=="
    else:
        assert response.status_code == 403 and key is not None and audited == []


def test_the_router_page_shows_the_pinned_fingerprint(auth, client, database_url):
    router_id = make_router(database_url, vendor="cisco_ios", interfaces="Gi0/0")
    pin(database_url, router_id)
    auth.login("technician")
    page = client.get(f"/netflow/routers/{router_id}").data.decode()
    assert "ssh-rsa SHA256:" in page
    assert "Re-pin" not in page  # a technician sees it but cannot change it


def test_plain_routeros_api_is_warned_about_on_the_list_and_the_router_page(auth, client, database_url):
    plain = make_router(database_url)
    ssl = make_router(database_url, name="edge-ssl", use_tls=True)
    auth.login("technician")
    assert 'id="plain-api"' in client.get(f"/netflow/routers/{plain}").data.decode()
    assert 'id="plain-api"' not in client.get(f"/netflow/routers/{ssl}").data.decode()
    listing = client.get("/netflow/routers").data.decode()
    assert listing.count('class="plain-api"') == 1


def test_the_first_job_pins_what_the_router_presents_and_audits_it(database_url, db_engine, mikrotik, settings):
    fake = mikrotik(tls=True, password=PASSWORD)
    router_id = make_router(database_url, port=fake.port, use_tls=True)
    with Session(engine_for(database_url), expire_on_commit=False) as db:
        job = runs.create_job(db, db.get(Router, router_id), "check", requested_by="tech-1")
        db.commit()
    done = runs.run_job(database_url, settings, job.id)
    assert done.state == "finished", done.message
    assert "Pinned TLS certificate SHA256" in done.log
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select pinned_key from ispflow.routers")).scalar() == fake.key_text
        assert conn.execute(sa.text("select actor from ispflow.audit_log where action = 'router.pin'")).scalar() == "tech-1"


def test_a_job_against_an_impostor_fails_with_a_clear_error(database_url, db_engine, mikrotik, settings):
    genuine, impostor = mikrotik(tls=True, password=PASSWORD), mikrotik(tls=True, password=PASSWORD, identity="impostor")
    router_id = make_router(database_url, port=impostor.port, use_tls=True)
    pin(database_url, router_id, genuine.key_text)
    with Session(engine_for(database_url), expire_on_commit=False) as db:
        job = runs.create_job(db, db.get(Router, router_id), "provision")
        db.commit()
    done = runs.run_job(database_url, settings, job.id)
    assert done.state == "failed"
    assert "not the pinned" in done.message and "nothing was sent" in done.message
    assert impostor.commands == []


def test_pointing_a_router_at_another_host_asks_for_the_password_again(auth, client, database_url):
    router_id = make_router(database_url)
    auth.login("technician")
    page = client.get(f"/netflow/routers/{router_id}/edit")
    response = client.post(f"/netflow/routers/{router_id}/edit",
                           data={**form_data(password="", host="198.51.100.66"), "csrf_token": csrf_token(page)})
    assert response.status_code == 200
    assert b"Enter the password again" in response.data
    with Session(engine_for(database_url)) as db:
        assert db.get(Router, router_id).host == "127.0.0.1"
