"""The worker: periodic jobs reconciled without duplicates, one scheduler at a time, jobs run by a
real rq worker against real Redis and PostgreSQL, and a command that stops cleanly."""
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from rq import SimpleWorker, Worker
from rq.cron import CronScheduler

from ispflow.config import Settings
from ispflow.jobs import PERIODIC_JOBS, PeriodicJob, queue
from ispflow.retention.commands import worker_command
from ispflow.status import LIVENESS_KEY, check_liveness
from ispflow.worker import LOCK_KEY, PeriodicScheduler, Scheduler, scheduler_owner

UTC = timezone.utc
OUR_JOBS = {"retention", "storage-statistics", "collector-liveness"}


@pytest.fixture
def settings(database_url, redis_url):
    return Settings(DATABASE_URL=database_url, REDIS_URL=redis_url)


@pytest.fixture
def schedulers(settings, redis_conn):
    """Makes schedulers and closes them all at the end, as their processes would when stopped."""
    made = []

    def make(periodic_jobs=None):
        made.append(Scheduler(settings, periodic_jobs=periodic_jobs))
        return made[-1]

    yield make
    for scheduler in made:
        scheduler.close()


def registered(scheduler):
    return sorted(job.name for job in scheduler.cron.get_jobs())


def test_the_periodic_list_holds_retention_statistics_and_liveness():
    assert OUR_JOBS <= {job.name for job in PERIODIC_JOBS}
    intervals = {job.name: job.interval for job in PERIODIC_JOBS}
    assert intervals["retention"] == 86400
    assert intervals["storage-statistics"] == 3600
    assert intervals["collector-liveness"] == 60


def test_reconciling_twice_registers_each_job_once(redis_conn, settings):
    cron = PeriodicScheduler(redis_conn)
    cron.reconcile(PERIODIC_JOBS, settings.QUEUE_NAME)
    cron.reconcile(PERIODIC_JOBS, settings.QUEUE_NAME)
    assert sorted(job.name for job in cron.get_jobs()) == sorted(job.name for job in PERIODIC_JOBS)


def test_a_changed_definition_replaces_its_registration(redis_conn, settings):
    cron = PeriodicScheduler(redis_conn)
    cron.reconcile(PERIODIC_JOBS, settings.QUEUE_NAME)
    changed = [replace(job, interval=120) if job.name == "collector-liveness" else job for job in PERIODIC_JOBS]
    cron.reconcile(changed, settings.QUEUE_NAME)
    intervals = {job.name: job.interval for job in cron.get_jobs()}
    assert len(cron.get_jobs()) == len(PERIODIC_JOBS)
    assert intervals["collector-liveness"] == 120


def test_a_removed_definition_is_unregistered(redis_conn, settings):
    cron = PeriodicScheduler(redis_conn)
    cron.reconcile(PERIODIC_JOBS, settings.QUEUE_NAME)
    cron.reconcile([job for job in PERIODIC_JOBS if job.name != "retention"], settings.QUEUE_NAME)
    assert "retention" not in {job.name for job in cron.get_jobs()}


def test_a_name_declared_twice_is_refused(redis_conn, settings):
    job = PeriodicJob("twice", 60, "ispflow.status:check_liveness")
    with pytest.raises(ValueError, match="'twice' is declared twice"):
        PeriodicScheduler(redis_conn).reconcile([job, job], settings.QUEUE_NAME)


def test_a_function_that_cannot_be_imported_is_named(redis_conn, settings):
    with pytest.raises(ValueError, match="'ispflow.nowhere:job' cannot be imported"):
        PeriodicScheduler(redis_conn).reconcile([PeriodicJob("x", 60, "ispflow.nowhere:job")], settings.QUEUE_NAME)


def test_the_worker_command_refuses_to_start_with_a_bad_periodic_job(runner, monkeypatch):
    monkeypatch.setattr("ispflow.jobs.PERIODIC_JOBS", [PeriodicJob("broken", 60, "ispflow.nowhere:job")])
    result = runner.invoke(worker_command)
    assert result.exit_code == 2
    assert "periodic job function 'ispflow.nowhere:job' cannot be imported" in result.output


def test_the_first_start_enqueues_every_job_once(schedulers, settings):
    schedulers().step()
    enqueued = sorted(job.func_name for job in queue(settings).get_jobs())
    assert enqueued == sorted(job.function.replace(":", ".") for job in PERIODIC_JOBS)


def test_a_restart_resumes_the_timetable_without_duplicates(schedulers, settings, redis_conn):
    first = schedulers()
    first.step()
    first.close()
    second = schedulers()
    second.step()
    assert len(queue(settings).get_jobs()) == len(PERIODIC_JOBS)
    assert registered(second) == sorted(job.name for job in PERIODIC_JOBS)
    assert [s.name for s in CronScheduler.all(redis_conn)] == [second.name]
    assert len(CronScheduler.all(redis_conn)[0].get_jobs()) == len(PERIODIC_JOBS)


def test_only_one_scheduler_schedules_at_a_time(schedulers, settings, redis_conn):
    first, second = schedulers(), schedulers()
    first.step()
    second.step()
    assert (first.holding, second.holding) == (True, False)
    assert scheduler_owner(redis_conn) == first.name
    assert len(queue(settings).get_jobs()) == len(PERIODIC_JOBS)


def test_another_scheduler_takes_over_when_the_lock_expires(schedulers, redis_conn):
    first, second = schedulers(), schedulers()
    first.step()
    redis_conn.delete(LOCK_KEY)  # what the TTL does when the holder's process died
    second.step()
    first.step()
    assert (first.holding, second.holding) == (False, True)
    assert scheduler_owner(redis_conn) == second.name


def test_a_scheduler_that_lost_its_lock_takes_it_back_without_duplicates(schedulers, settings, redis_conn):
    only = schedulers()
    only.step()
    redis_conn.delete(LOCK_KEY)  # e.g. Redis restarted without its data
    only.step()
    only.step()
    assert only.holding
    assert registered(only) == sorted(job.name for job in PERIODIC_JOBS)
    assert [s.name for s in CronScheduler.all(redis_conn)] == [only.name]
    assert len(queue(settings).get_jobs()) == len(PERIODIC_JOBS)


def test_jobs_that_are_safe_to_repeat_get_retries_and_every_job_a_timeout(schedulers, settings):
    schedulers().step()
    jobs = {job.func_name: job for job in queue(settings).get_jobs()}
    retention = jobs["ispflow.retention.jobs.run_retention"]
    assert (retention.retries_left, retention.timeout) == (3, 3600)
    assert jobs["ispflow.status.check_liveness"].retries_left is None


def test_a_run_still_queued_when_the_next_is_due_expires(schedulers, settings):
    schedulers().step()
    liveness = next(job for job in queue(settings).get_jobs() if job.func_name == "ispflow.status.check_liveness")
    assert liveness.ttl == 60
    assert 0 < queue(settings).connection.ttl(liveness.key) <= 60


def test_the_periodic_jobs_run_on_a_real_rq_worker(schedulers, settings, db_engine, redis_conn, monkeypatch, tmp_path):
    for key, value in {"DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL,
                       "EXPORT_DIR": str(tmp_path / "exports"), "SPOOL_DIR": str(tmp_path / "spool")}.items():
        monkeypatch.setenv(f"ISPFLOW_{key}", value)
    with db_engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, protocol, bytes, packets) "
            "values (:old, :old, 1, '100.64.0.1', '192.0.2.1', 6, 1, 1), "
            "(:new, :new, 1, '100.64.0.1', '192.0.2.1', 6, 1, 1)"),
            {"old": datetime.now(UTC) - timedelta(days=250), "new": datetime.now(UTC)})
    schedulers([job for job in PERIODIC_JOBS if job.name in OUR_JOBS]).step()
    worker = SimpleWorker([queue(settings)], connection=redis_conn)
    assert worker.work(burst=True)
    with db_engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ispflow.flows")).scalar() == 1
        assert conn.execute(sa.text("select count(*) from ispflow.storage_samples")).scalar() > 0
        assert conn.execute(sa.text("select count(*) from ispflow.audit_log where action = 'retention'")).scalar() == 1
    assert redis_conn.get(LIVENESS_KEY) == b"down"  # enabled, but no collector in this test
    assert queue(settings).failed_job_registry.count == 0


def wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_the_worker_command_schedules_runs_jobs_and_stops_cleanly_on_sigterm(settings, db_engine, redis_conn, tmp_path):
    env = {**os.environ, "ISPFLOW_DATABASE_URL": settings.DATABASE_URL, "ISPFLOW_REDIS_URL": settings.REDIS_URL,
           "ISPFLOW_EXPORT_DIR": str(tmp_path / "exports"), "ISPFLOW_SPOOL_DIR": str(tmp_path / "spool")}
    command = Path(sys.executable).with_name("ispflow")
    process = subprocess.Popen([str(command), "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        started = wait_for(lambda: scheduler_owner(redis_conn) and Worker.all(connection=redis_conn)
                           and redis_conn.get(LIVENESS_KEY))
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert started, output
    assert process.returncode == 0, output
    assert scheduler_owner(redis_conn) is None
    assert Worker.all(connection=redis_conn) == []
    assert "Traceback" not in output


def test_the_burst_worker_runs_what_is_queued_and_exits(settings, db_engine, redis_conn):
    queue(settings).enqueue(check_liveness)
    env = {**os.environ, "ISPFLOW_DATABASE_URL": settings.DATABASE_URL, "ISPFLOW_REDIS_URL": settings.REDIS_URL}
    result = subprocess.run([str(Path(sys.executable).with_name("ispflow")), "worker", "--burst"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert redis_conn.get(LIVENESS_KEY) == b"down"
    assert len(queue(settings)) == 0


def test_ctrl_c_to_the_worker_process_group_stops_every_process(settings, db_engine, redis_conn, tmp_path):
    """What a terminal does on Ctrl-C: SIGINT to the whole foreground process group."""
    env = {**os.environ, "ISPFLOW_DATABASE_URL": settings.DATABASE_URL, "ISPFLOW_REDIS_URL": settings.REDIS_URL,
           "ISPFLOW_EXPORT_DIR": str(tmp_path / "exports"), "ISPFLOW_SPOOL_DIR": str(tmp_path / "spool")}
    command = Path(sys.executable).with_name("ispflow")
    process = subprocess.Popen([str(command), "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    stopped = False
    try:
        started = wait_for(lambda: scheduler_owner(redis_conn) and Worker.all(connection=redis_conn))
        os.killpg(process.pid, signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
        stopped = True
    except subprocess.TimeoutExpired:
        output = "the worker did not stop within 60 s of SIGINT"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
        process.wait()
    assert started and stopped, output
    assert scheduler_owner(redis_conn) is None, output
    assert Worker.all(connection=redis_conn) == [], output
    assert "Traceback" not in output
