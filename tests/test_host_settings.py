"""One source of truth: a host panel configures ispflow through its app and its own Flask-SQLAlchemy,
and its pages, its worker and its commands all use that — whatever ``ISPFLOW_*`` variables say."""
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from .host_panel import as_user, create_app, log_signals_to
from .netflow_tools import free_udp_port, send
from .test_roles import PAGES
from ispflow.app_state import settings
from ispflow.collector import trust
from ispflow.config import Settings
from ispflow.jobs import queue
from ispflow.module_settings import ModuleSettings, save
from ispflow.retention.jobs import run_retention
from ispflow.search import jobs
from ispflow.testing import csrf_token
from tests import synthetic
from tests.sample_flows import flow, insert_exporter, insert_flows

ISPFLOW = str(Path(sys.executable).with_name("ispflow"))
REPOSITORY = Path(__file__).resolve().parent.parent
HOST_KEY = Fernet.generate_key().decode()


def nowhere_database(database_url: str) -> str:
    """A database URL on the test server naming a database that does not exist."""
    return re.sub(r"/[^/]*$", f"/ispflow_nowhere_{secrets.token_hex(4)}", database_url)


@pytest.fixture
def host(tmp_path, database_url, redis_url, db_engine, monkeypatch):
    """The host panel, built in this process, while the environment points ispflow elsewhere."""
    config = {
        "database_uri": database_url.replace("postgresql://", "postgresql+psycopg2://", 1),
        "signal_log": str(tmp_path / "signals.jsonl"),
        "ispflow": {"ISPFLOW_REDIS_URL": redis_url, "ISPFLOW_EXPORT_DIR": str(tmp_path / "host-exports"),
                    "ISPFLOW_ENCRYPTION_KEY": HOST_KEY, "ISPFLOW_SPOOL_DIR": str(tmp_path / "spool"),
                    "ISPFLOW_STATE_DIR": str(tmp_path / "state"),
                    "ISPFLOW_COLLECTOR_LISTEN": f"127.0.0.1:{free_udp_port()}"},
    }
    path = tmp_path / "host-panel.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("HOST_PANEL_CONFIG", str(path))
    monkeypatch.setenv("ISPFLOW_DATABASE_URL", nowhere_database(database_url))
    app = create_app()
    app.testing = True
    yield app
    log_signals_to(None)
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        db.session.remove()
        db.engine.dispose()


def worker_environment(host, database_url, tmp_path) -> dict:
    """A worker's environment that disagrees with the panel on everything ispflow reads."""
    return {**os.environ, "HOST_PANEL_CONFIG": os.environ["HOST_PANEL_CONFIG"],
            "ISPFLOW_DATABASE_URL": nowhere_database(database_url), "ISPFLOW_REDIS_URL": "redis://127.0.0.1:1/0",
            "ISPFLOW_EXPORT_DIR": str(tmp_path / "worker-exports"),
            "ISPFLOW_ENCRYPTION_KEY": Fernet.generate_key().decode()}


def run_host_worker(env, named_by="--app") -> subprocess.CompletedProcess:
    """``ispflow worker --burst`` in the host's app, named on the command line or by ISPFLOW_APP."""
    if named_by == "--app":
        command = [ISPFLOW, "--app", "tests.host_panel:create_app", "worker", "--burst"]
    else:
        command, env = [ISPFLOW, "worker", "--burst"], {**env, "ISPFLOW_APP": "tests.host_panel:create_app"}
    result = subprocess.run(command, env=env, cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def heard() -> list[dict]:
    """The signals the host panel's receivers heard, in any process."""
    path = Path(json.loads(Path(os.environ["HOST_PANEL_CONFIG"]).read_text())["signal_log"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def add_router(client, port: int) -> str:
    """Add a MikroTik router through the panel's form (its password encrypted with the panel's key)."""
    token = csrf_token(client.get("/netflow/routers/new"))
    added = client.post("/netflow/routers/new", data={
        "csrf_token": token, "name": "edge-1", "vendor": "mikrotik", "host": "127.0.0.1", "port": str(port),
        "username": "admin", "password": "router-password-42", "interfaces": "all", "netflow_version": "9",
        "collector": "192.0.2.10:2055", "source_interface": "", "timeout_s": "5"})
    return added.headers["Location"]


@pytest.mark.parametrize("page", sorted(set(PAGES) - {"/netflow/my"}))
def test_every_page_works_through_the_hosts_own_database(host, page):
    as_user(host, "carol", sorted(PAGES[page])[0])
    assert host.test_client().get(page).status_code == 200


def test_the_customer_page_works_through_the_hosts_own_database(host):
    as_user(host, "erin", "customer", account="ACC-9")
    assert b"ACC-9" in host.test_client().get("/netflow/my").data


def test_search_who_and_audit_verification_go_through_the_hosts_own_database(host, db_engine):
    with db_engine.connect() as conn:
        insert_exporter(conn, "192.0.2.1", "edge")
        insert_flows(conn, [flow("2026-01-10T10:00:00Z", "100.64.0.10", "198.51.100.1")])
        conn.commit()
    client = host.test_client()
    as_user(host, "olga", "compliance")
    token = csrf_token(client.get("/netflow/search"))
    found = client.post("/netflow/search", data={"csrf_token": token, "ip": "100.64.0.10", "date_from": "2026-01-10",
                                                 "date_to": "2026-01-10", "case_ref": "CASE-1", "action": "search"})
    assert found.status_code == 200 and b"198.51.100.1" in found.data
    token = csrf_token(client.get("/netflow/who"))
    who = client.post("/netflow/who", data={"csrf_token": token, "ip": "100.64.0.10", "at": "2026-01-10T10:00",
                                            "port": "", "case_ref": "CASE-1"})
    assert who.status_code == 200
    as_user(host, "carol", "admin")
    token = csrf_token(client.get("/netflow/audit"))
    verified = client.post("/netflow/audit", data={"csrf_token": token})
    assert verified.status_code == 200 and b"CASE-1" in verified.data
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ispflow.audit_log")).scalar() == 2


def test_a_worker_in_the_hosts_app_runs_exports_and_router_checks_as_the_panel_configured_them(
        host, database_url, redis_url, db_engine, tmp_path, mikrotik, redis_conn, monkeypatch):
    monkeypatch.setattr(jobs, "SYNC_EXPORT_ROWS", 0)  # every export goes to the worker
    with db_engine.connect() as conn:
        insert_exporter(conn, "192.0.2.1", "edge")
        insert_flows(conn, [flow("2026-01-10T10:00:00Z", "100.64.0.10", "198.51.100.1")])
        conn.commit()
    router = mikrotik(password="router-password-42")
    client = host.test_client()

    as_user(host, "olga", "compliance")
    token = csrf_token(client.get("/netflow/search"))
    export = client.post("/netflow/search", data={"csrf_token": token, "ip": "100.64.0.10", "date_from": "2026-01-10",
                                                  "date_to": "2026-01-10", "case_ref": "CASE-9", "action": "export"})
    as_user(host, "tom", "technician")
    router_page = add_router(client, router.port)
    check = client.post(router_page + "/check", data={"csrf_token": csrf_token(client.get(router_page))})
    job_id = int(check.headers["Location"].rsplit("job=", 1)[1])
    queued = queue(Settings(REDIS_URL=redis_url)).get_jobs()
    assert [(job.args, job.kwargs) for job in queued] == [((1,), {}), ((job_id,), {})]  # ids only: no settings, no key

    worker = run_host_worker(worker_environment(host, database_url, tmp_path))

    as_user(host, "olga", "compliance")
    status = client.get(export.headers["Location"]).data.decode()
    manifest_link = status.split('id="manifest" href="')[1].split('"')[0]
    with client.get(manifest_link) as response:
        assert response.status_code == 200, worker.stderr
        manifest = json.loads(response.get_data())
    assert manifest["row_count"] == 1 and manifest["case_ref"] == "CASE-9"
    assert sorted(p.name for p in (tmp_path / "host-exports").iterdir()) == [
        "ispflow-export-1.csv", "ispflow-export-1.manifest.json"]
    assert not (tmp_path / "worker-exports").exists()
    as_user(host, "tom", "technician")
    job = json.loads(client.get(f"/netflow/routers/jobs/{job_id}.json").data)
    assert job["state"] == "finished", job
    assert [(h["signal"], h["pid"] != os.getpid()) for h in heard()] == [("export_made", True)]


def test_signals_from_jobs_reach_the_receivers_the_host_connects_in_the_worker(
        host, database_url, db_engine, tmp_path, mikrotik, redis_conn):
    with db_engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, protocol, bytes, packets) "
            "values (:old, :old, 1, '100.64.0.1', '192.0.2.1', 6, 1, 1)"),
            {"old": datetime.now(timezone.utc) - timedelta(days=400)})
    router = mikrotik(password="router-password-42")
    client = host.test_client()
    as_user(host, "tom", "technician")
    router_page = add_router(client, router.port)
    client.post(router_page + "/provision", data={"csrf_token": csrf_token(client.get(router_page))})
    with host.app_context():
        queue(settings()).enqueue(run_retention)

    run_host_worker(worker_environment(host, database_url, tmp_path), named_by="ISPFLOW_APP")

    assert sorted((h["signal"], h["pid"] != os.getpid()) for h in heard()) == [
        ("retention_ran", True), ("router_provisioned", True)]


def test_a_host_app_without_ispflow_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "bare_panel.py").write_text("from flask import Flask\napp = Flask('bare_panel')\n")
    result = subprocess.run([ISPFLOW, "--app", f"{tmp_path / 'bare_panel.py'}:app", "status"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("ispflow: ispflow is not initialised on the app 'bare_panel': "
                             "call ISPFlow().init_app(app).\n")


def test_a_collector_in_the_hosts_app_listens_where_the_host_says_and_stores_in_its_database(
        host, database_url, db_engine, tmp_path):
    with db_engine.begin() as conn:  # what the collector would use were the host's setting ignored
        save(conn, ModuleSettings(collector_listen=f"127.0.0.1:{free_udp_port()}"))
        trust.trust(conn, "127.0.0.1", actor="test")
    listen = host.config["ISPFLOW_COLLECTOR_LISTEN"]
    port = int(listen.rsplit(":", 1)[1])
    flows = synthetic.generate_flows(30, seed=3, start=1_767_225_600.0, subscriber_prefix="100.64.0.0/22")
    packets = synthetic.Exporter(version=10).packets(flows, synthetic.IPFIX_IPV4, export_time=1_767_225_700.0)
    command = [ISPFLOW, "--app", "tests.host_panel:create_app", "collector"]
    with subprocess.Popen(command, env=worker_environment(host, database_url, tmp_path), cwd=REPOSITORY,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            started = first_lines_until(process.stderr, "receiving on")
            assert f"receiving on {listen}" in started[-1], "".join(started)
            send(packets, port)
            stored = wait_for_rows(db_engine, 30)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert stored == 30


def first_lines_until(stream, text: str) -> list[str]:
    """Lines of a running process's output up to the first holding ``text`` (or its end)."""
    lines = []
    while not lines or text not in lines[-1]:
        line = stream.readline()
        if not line:
            break
        lines.append(line)
    return lines


def wait_for_rows(engine, count: int, seconds: float = 20.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("select count(*) from ispflow.flows")).scalar()
        if stored >= count or time.monotonic() > deadline:
            return stored
        time.sleep(0.1)
