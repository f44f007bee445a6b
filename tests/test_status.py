"""Liveness: NetFlow is active while heartbeats and flows arrive and the jobs run; the banner and
the collector_down signal follow the changes."""
import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from rq import Worker

from ispflow import module_settings, status
from ispflow.config import Settings
from ispflow.jobs import queue
from ispflow.commands.retention import status_command
from ispflow.retention.jobs import run_retention
from ispflow.signals import collector_down
from ispflow.status import check_liveness, current_status
from ispflow.worker import InProcessJobWorker, Scheduler

UTC = timezone.utc
COUNTERS = {"packets": 10, "flows": 300, "flows_stored": 300, "decode_errors": 0, "kernel_drops": 0,
            "spooled_batches": 0, "lost_flows": 0}


@pytest.fixture
def settings(database_url, redis_url):
    return Settings(DATABASE_URL=database_url, REDIS_URL=redis_url)


@pytest.fixture
def jobs_running(settings, redis_conn):
    """A registered rq worker and the scheduler holding its lock, as ``ispflow worker`` leaves them."""
    worker = Worker([queue(settings)], connection=redis_conn)
    worker.register_birth()
    scheduler = Scheduler(settings, periodic_jobs=[])
    scheduler.step()
    yield worker
    scheduler.close()
    worker.register_death()


@pytest.fixture(autouse=True)
def fresh_status_cache():
    status.forget_cached()
    yield
    status.forget_cached()


def beat(engine, at=None, collector="collector-1"):
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.collector_heartbeats (collector, hostname, pid, started_at, beat_at, counters) "
            "values (:c, 'flowbox', 4242, :at, :at, cast(:counters as jsonb)) on conflict (collector) do update "
            "set beat_at = excluded.beat_at, counters = excluded.counters"),
            {"c": collector, "at": at or datetime.now(UTC), "counters": json.dumps(COUNTERS)})


def flow_arrived(engine, at=None, exporter="192.0.2.1"):
    at = at or datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.exporters (address, name, netflow_version, last_seen, last_flow_at, flows) "
            "values (:a, 'edge-1', 9, :at, :at, 1) on conflict (address) do update "
            "set last_seen = excluded.last_seen, last_flow_at = excluded.last_flow_at"), {"a": exporter, "at": at})


def collecting(engine):
    beat(engine)
    flow_arrived(engine)


def test_active_when_heartbeat_flows_worker_and_scheduler_are_all_fresh(db_engine, settings, jobs_running):
    collecting(db_engine)
    now = current_status(settings)
    assert now.active and now.headline == "NetFlow is enabled"
    assert now.reason is None


def test_no_collector_ever_is_the_reason(db_engine, settings, jobs_running):
    now = current_status(settings)
    assert now.headline == "NetFlow is not active!"
    assert now.reason == "No collector is running: none has ever sent a heartbeat."


def test_a_stale_heartbeat_says_when_the_collector_stopped(db_engine, settings, jobs_running):
    beat(db_engine, at=datetime.now(UTC) - timedelta(minutes=5))
    flow_arrived(db_engine)
    assert current_status(settings).reason.startswith("The collector stopped: its last heartbeat was 5 min ago")


def test_no_recent_flows_is_the_reason_even_with_a_fresh_heartbeat(db_engine, settings, jobs_running):
    beat(db_engine)
    flow_arrived(db_engine, at=datetime.now(UTC) - timedelta(hours=3))
    assert current_status(settings).reason == "No flows arrived in the last 10 minutes (the last one 3 h ago)."


def test_stored_flows_count_as_arrived_when_exporter_bookkeeping_lags(db_engine, settings, jobs_running):
    beat(db_engine)
    with db_engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, protocol, bytes, packets) "
            "values (now() - interval '1 minute', now(), 1, '100.64.0.1', '192.0.2.1', 6, 1, 1)"))
    assert current_status(settings).active


def test_each_exporter_reports_its_last_flow_and_whether_it_is_stale(db_engine, settings, jobs_running):
    beat(db_engine)
    flow_arrived(db_engine, exporter="192.0.2.1")
    flow_arrived(db_engine, at=datetime.now(UTC) - timedelta(days=2), exporter="192.0.2.2")
    exporters = {str(e.address): e.stale for e in current_status(settings).exporters}
    assert exporters == {"192.0.2.1": False, "192.0.2.2": True}


def test_without_a_worker_the_jobs_are_the_reason(db_engine, settings, redis_conn):
    collecting(db_engine)
    scheduler = Scheduler(settings, periodic_jobs=[])
    scheduler.step()
    try:
        assert current_status(settings).reason == "No job worker is running: start it with 'ispflow worker'."
    finally:
        scheduler.close()


def test_without_the_scheduler_the_jobs_are_the_reason(db_engine, settings, redis_conn):
    collecting(db_engine)
    worker = Worker([queue(settings)], connection=redis_conn)
    worker.register_birth()
    try:
        assert current_status(settings).reason.startswith("The job scheduler is not running")
    finally:
        worker.register_death()


def test_a_disabled_module_is_not_active_but_raises_no_alarm(db_engine, settings, jobs_running):
    with db_engine.begin() as conn:
        module_settings.save(conn, module_settings.ModuleSettings(enabled=False))
    now = current_status(settings)
    assert not now.active
    assert now.reason == "The NetFlow module is disabled in the module settings."
    assert now.collecting_problem is None


def test_unreachable_redis_is_reported_not_raised(db_engine, database_url):
    collecting(db_engine)
    now = current_status(Settings(DATABASE_URL=database_url, REDIS_URL="redis://127.0.0.1:1/0"))
    assert now.reason == "Redis is unreachable, so no job runs."


def test_liveness_goes_active_then_down_then_active_signalling_each_stop_once(db_engine, settings, jobs_running):
    heard = []
    with collector_down.connected_to(lambda sender, reason: heard.append(reason)):
        collecting(db_engine)
        first = check_liveness(settings)
        beat(db_engine, at=datetime.now(UTC) - timedelta(minutes=2))
        down, still_down = check_liveness(settings), check_liveness(settings)
        collecting(db_engine)
        back = check_liveness(settings)
    assert (first, down, still_down, back) == ("active", "down", "down", "active")
    assert len(heard) == 1 and heard[0].startswith("The collector stopped")


def test_the_status_command_exits_0_when_active_and_1_when_not(db_engine, runner, jobs_running):
    collecting(db_engine)
    active = runner.invoke(status_command)
    assert active.exit_code == 0, active.output
    assert active.output.startswith("NetFlow is enabled")
    beat(db_engine, at=datetime.now(UTC) - timedelta(hours=1))
    inactive = runner.invoke(status_command)
    assert inactive.exit_code == 1
    assert "NetFlow is not active!" in inactive.output
    assert "Reason: The collector stopped" in inactive.output


BANNER = b'class="banner ispflow-banner"'


def test_the_banner_appears_and_disappears_with_collection(db_engine, auth, client, jobs_running):
    auth.login("technician")
    collecting(db_engine)
    assert BANNER not in client.get("/netflow/").data
    beat(db_engine, at=datetime.now(UTC) - timedelta(minutes=3))
    status.forget_cached()
    page = client.get("/netflow/").data
    assert page.count(BANNER) == 1
    assert b"The collector stopped" in page
    collecting(db_engine)
    status.forget_cached()
    assert BANNER not in client.get("/netflow/").data


def test_the_banner_greets_staff_on_the_landing_page_after_login(db_engine, auth, client):
    response = auth.login("compliance")
    landing = client.get(response.headers["Location"]).data
    assert BANNER in landing
    assert b"No collector is running" in landing


def test_customers_see_no_banner(db_engine, auth, client):
    auth.login("customer")
    assert BANNER not in client.get("/netflow/my").data


def test_the_banner_shows_inside_a_host_panel_base_template(db_engine, app, auth, client, tmp_path):
    host_templates = tmp_path / "host"
    (host_templates / "panel").mkdir(parents=True)
    (host_templates / "panel" / "base.html").write_text(
        "<html><body><div id='host'>{% block content %}{% endblock %}</div></body></html>")
    import jinja2

    app.jinja_loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(host_templates)), app.jinja_loader])
    app.extensions["ispflow"].configured = Settings.from_flask({**app.config, "ISPFLOW_BASE_TEMPLATE": "panel/base.html"})
    auth.login("admin")
    page = client.get("/netflow/").data
    assert b"<div id='host'>" in page
    assert page.count(BANNER) == 1


def test_the_status_page_shows_checks_exporters_counters_and_failed_jobs(db_engine, auth, client, settings,
                                                                         jobs_running):
    collecting(db_engine)
    unreachable = Settings(DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere", REDIS_URL=settings.REDIS_URL)
    queue(settings).enqueue(run_retention, unreachable)
    InProcessJobWorker(settings).work(burst=True)
    auth.login("admin")
    page = client.get("/netflow/status").data
    assert b'<h1 id="headline" class="ok">NetFlow is enabled</h1>' in page
    assert b"192.0.2.1" in page and b"flowbox (4242)" in page
    assert b"kernel drops: <strong>0</strong>" in page
    assert b"ispflow.retention.jobs.run_retention" in page
    assert b"OperationalError: (psycopg2.OperationalError) connection to server at" in page
    assert b"collector-liveness" in page


def test_a_panel_process_that_notices_the_stop_signals_it_once(db_engine, auth, client, jobs_running):
    auth.login("admin")
    collecting(db_engine)
    heard = []
    with collector_down.connected_to(lambda sender, reason: heard.append(reason)):
        client.get("/netflow/")
        beat(db_engine, at=datetime.now(UTC) - timedelta(minutes=3))
        for _ in range(2):
            status.forget_cached()
            client.get("/netflow/")
    assert len(heard) == 1 and heard[0].startswith("The collector stopped")
