"""The panel's view of the module as Prometheus metrics: status checks, job queue, storage.

Built per scrape from what the status and storage pages read (``status.cached_status``,
``retention.storage.table_sizes``), so the numbers a scraper sees are the ones people see.
Names are listed in docs/metrics.md. No Flask here: ``web/metrics.py`` serves it.
"""
from __future__ import annotations

import redis
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .config import Settings
from .database import engine_for
from .status import cached_status


class _PanelCollector:
    def __init__(self, settings: Settings):
        self.settings = settings

    def collect(self):
        status = cached_status(self.settings)
        enabled = GaugeMetricFamily("ispflow_module_enabled", "1 when the module is switched on in its settings.")
        enabled.add_metric([], 1 if status.enabled else 0)
        yield enabled
        active = GaugeMetricFamily("ispflow_active", "1 when the module is enabled and every check passes.")
        active.add_metric([], 1 if status.active else 0)
        yield active
        checks = GaugeMetricFamily("ispflow_status_check_ok", "1 when the status check passes.", labels=["check"])
        for check in status.checks:
            checks.add_metric([check.name], 1 if check.ok else 0)
        yield checks
        workers = GaugeMetricFamily("ispflow_workers", "Job workers registered in Redis.")
        workers.add_metric([], len(status.workers))
        yield workers
        yield from self._queue()
        yield from self._storage()

    def _queue(self):
        from rq.registry import FailedJobRegistry, StartedJobRegistry

        from .jobs import queue

        depth = GaugeMetricFamily("ispflow_worker_queue_depth", "Jobs waiting in the queue.", labels=["queue"])
        running = GaugeMetricFamily("ispflow_worker_jobs_running", "Jobs being run.", labels=["queue"])
        failed = GaugeMetricFamily("ispflow_worker_jobs_failed", "Failed jobs kept in the registry.",
                                   labels=["queue"])
        try:
            jobs = queue(self.settings)
            depth.add_metric([jobs.name], jobs.count)
            running.add_metric([jobs.name], StartedJobRegistry(queue=jobs).count)
            failed.add_metric([jobs.name], FailedJobRegistry(queue=jobs).count)
        except redis.exceptions.RedisError:
            pass  # the status check 'redis' says so
        yield from (depth, running, failed)

    def _storage(self):
        from .retention.storage import table_sizes

        tables = GaugeMetricFamily("ispflow_storage_table_bytes", "Bytes of each ispflow table with its indexes "
                                   "(hypertables with their chunks).", labels=["table"])
        rows = GaugeMetricFamily("ispflow_storage_table_rows", "Estimated rows of each ispflow table.",
                                 labels=["table"])
        database = GaugeMetricFamily("ispflow_storage_database_bytes", "Bytes of the whole database.")
        try:
            with engine_for(self.settings.DATABASE_URL).connect() as conn:
                sizes, estimates = table_sizes(conn)
                database.add_metric([], conn.execute(sa.text("select pg_database_size(current_database())")).scalar())
        except sa.exc.OperationalError:
            sizes, estimates = {}, {}  # the status check 'database' says so
        for table in sorted(sizes):
            tables.add_metric([table], sizes[table])
            rows.add_metric([table], estimates.get(table, 0))
        yield from (tables, rows, database)


def panel_metrics(settings: Settings) -> bytes:
    """The Prometheus text exposition of the module's state, now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PanelCollector(settings))
    return generate_latest(registry)
