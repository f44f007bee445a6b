"""Commands ``ispflow worker``, ``ispflow status``, ``ispflow retention run`` and ``ispflow storage``.

They run the same functions as the rq jobs and the pages, with the settings of the app the
command runs in (the host's with ``--app``); ``ispflow worker`` hands them to every job.
"""
from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from ..app_state import engine, settings
from ..retention.storage import human_bytes, storage_report
from .failure import fail


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run the jobs already queued, then exit (no scheduler).")
@with_appcontext
def worker_command(burst):
    """Run the job worker and the scheduler of periodic jobs (retention, statistics, liveness)."""
    from ..jobs import PERIODIC_JOBS
    from ..worker import checked, run_worker

    try:
        checked(PERIODIC_JOBS)  # a bad entry stops the start, rather than the scheduler later
    except ValueError as exc:
        fail(f"{exc}.")
    run_worker(settings(), burst=burst)


@click.command("status")
@with_appcontext
def status_command():
    """Say whether NetFlow is being collected; exit status 0 when active, 1 when not."""
    from ..status import current_status

    status = current_status(settings())
    click.echo(status.headline)
    if status.reason:
        click.echo(f"Reason: {status.reason}")
    for check in status.checks:
        click.echo(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    for exporter in status.exporters:
        last = exporter.last_flow_at.isoformat() if exporter.last_flow_at else "never"
        click.echo(f"  exporter {exporter.address}: last flow {last}{' (stale)' if exporter.stale else ''}")
    for job in status.failed_jobs:
        click.echo(f"  failed job {job.function} at {job.ended_at}: {job.error}")
    sys.exit(0 if status.active else 1)


@click.group("retention")
def retention_group():
    """Delete retained data past its period."""


@retention_group.command("run")
@with_appcontext
def retention_run():
    """Run the retention job now (the worker runs it daily); prints what was deleted."""
    from ..retention.jobs import run_retention

    for line in run_retention(settings()).lines():
        click.echo(line)


@click.command("storage")
@with_appcontext
def storage_command():
    """Print the storage statistics: sizes, growth, days held, free space and when it fills."""
    with engine().connect() as conn:
        report = storage_report(conn, settings())
    click.echo(f"Retained data: {human_bytes(report.total_bytes)} (database {human_bytes(report.database_bytes)})")
    click.echo(f"Growth per day: {human_bytes(report.growth_per_day)}, rows per day: {report.rows_per_day or '—'}")
    click.echo(f"Days held: {report.days_held} of {report.retention_days}")
    if report.volume:
        click.echo(f"Free space on {report.volume.path}: {human_bytes(report.volume.free_bytes)} "
                   f"of {human_bytes(report.volume.total_bytes)}")
        click.echo(f"Fills on: {report.fills_on or 'not at the current rate'}")
    else:
        click.echo(f"Free space: unknown ({report.volume_unknown_because})")
    for month in report.months:
        click.echo(f"  {month.day:%Y-%m}  {human_bytes(month.bytes):>10}  {month.rows} rows")


COMMANDS = (worker_command, status_command, retention_group, storage_command)
