"""The collector's roll-ups: every flow it stores is added to the roll-up tables from memory,
so keeping the analytics costs the database a few rows per subscriber and hour instead of a
second pass over the flows (``analytics.rollups`` says how the job checks the result).

Flows of an hour that is still open (until ``rollups.GRACE`` after its end) are kept in memory
once their batch is committed, and the hour's roll-ups are computed (``analytics.columnar``) and
written in one transaction when it closes. Flows that arrive later go into the roll-ups in the
transaction that stores them. A flush takes ``rollups.WRITE_LOCK`` shared and skips the hours
the job has already checked: the job rebuilt those from the raw flows, which include these.

Nothing here may cost a flow: a roll-up that cannot be computed or written is logged, counted
and dropped, and the job rebuilds its hour from the stored flows.
"""
from __future__ import annotations

import io
import logging
import threading
import time

import numpy as np
import psycopg2

from .. import tables
from ..analytics import columnar, rollups
from .enrich import EnrichedFlows
from .pgcopy import encode_rows
from .writer import interface_stored

log = logging.getLogger(__name__)

HOUR_US = columnar.HOUR_US
GRACE_US = int(rollups.GRACE.total_seconds()) * 1_000_000
MAX_PENDING = 4_000_000   # flows held in memory (~100 B each); more flush the open hours early


def _closes(ts_start):
    """When the hour of each start (µs) closes: its end plus the grace."""
    return ts_start // HOUR_US * HOUR_US + HOUR_US + GRACE_US


def copy_sql(table: str) -> str:
    return f"copy ispflow.{table} ({', '.join(tables.names(getattr(tables, table)))}) from stdin with (format binary)"


class RollupKeeper:
    def __init__(self, dsn: str, clock=time.time, max_pending: int = MAX_PENDING):
        self.dsn = dsn
        self.clock = clock
        self.max_pending = max_pending
        self.accounts: list[str] = []
        self.services: list[str] = []
        self._account_ids: dict[str, int] = {}
        self._service_ids: dict[str, int] = {}
        self._names: tuple[object, np.ndarray, np.ndarray] | None = None
        self._pending: list[columnar.FlowColumns] = []
        self._pending_flows = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.counters = dict(rolled_up=0, late=0, failed=0, skipped=0)

    # --- from a stored batch ---------------------------------------------------------------
    def columns(self, enriched: EnrichedFlows, exporter_ids: np.ndarray) -> columnar.FlowColumns:
        f = enriched.flows
        with self._lock:
            account_of, service_of = self._name_indexes(enriched.subscribers)
        sub = enriched.subscriber.astype(np.int64)
        known = sub >= 0
        account = np.where(known, account_of[np.maximum(sub, 0)], -1)
        service = np.where(known, service_of[np.maximum(sub, 0)], -1)

        def interface(values):   # -1 where the flow's row has NULL
            return np.where(interface_stored(values), values, -1)

        return columnar.FlowColumns(
            ts_start=f.ts_start, ts_end=f.ts_end, bytes=f.bytes, packets=f.packets, family=f.family,
            src_addr=f.src_addr, dst_addr=f.dst_addr, src_port=f.src_port, dst_port=f.dst_port,
            protocol=f.protocol, in_if=interface(f.in_if), out_if=interface(f.out_if),
            exporter_id=exporter_ids[f.exporter].astype(np.int32), account=account, service=service,
            direction=enriched.direction)

    def _name_indexes(self, subscribers) -> tuple[np.ndarray, np.ndarray]:
        """Per subscriber of the directory's list, its account's and service's index in this
        keeper's names (the directory's list is replaced on reload; names stay)."""
        if self._names is not None and self._names[0] is subscribers:
            return self._names[1], self._names[2]

        def index(names, ids, name):
            if name is None:
                return -1
            if name not in ids:
                ids[name] = len(names)
                names.append(name)
            return ids[name]

        account_of = np.array([index(self.accounts, self._account_ids, a) for a, _ in subscribers] or [-1],
                              dtype=np.int64)
        service_of = np.array([index(self.services, self._service_ids, s) for _, s in subscribers] or [-1],
                              dtype=np.int64)
        self._names = (subscribers, account_of, service_of)
        return account_of, service_of

    def split(self, flows: columnar.FlowColumns) -> tuple[columnar.FlowColumns | None, columnar.FlowColumns | None]:
        """(flows of hours still open, flows of closed hours: to roll up with their batch)."""
        late = _closes(flows.ts_start) <= int(self.clock() * 1_000_000)
        if not late.any():
            return flows, None
        if late.all():
            return None, flows
        return flows.take(~late), flows.take(late)

    def add(self, flows: columnar.FlowColumns | None) -> None:
        """Hold a committed batch's flows of open hours until their hour closes."""
        if flows is None or not len(flows):
            return
        with self._lock:
            self._pending.append(flows)
            self._pending_flows += len(flows)

    def write_late(self, conn, flows: columnar.FlowColumns | None) -> None:
        """Add flows of closed hours to the roll-ups in the caller's transaction (the one that
        stores them). A failure is rolled back to before the roll-ups and counted; the flows
        are stored anyway and the job rebuilds their hour."""
        if flows is None or not len(flows):
            return
        with self._lock:
            accounts, services = list(self.accounts), list(self.services)
        try:
            payloads = [(r.table, encode_rows(r.columns)) for r in columnar.compute(flows, accounts, services, False)]
        except Exception:
            log.exception("roll-ups of %d late flows could not be computed; the roll-up job rebuilds their hour",
                          len(flows))
            self._count("failed", len(flows))
            return
        with conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock_shared(%s)", (rollups.WRITE_LOCK,))
            cur.execute("savepoint rollups")
            try:
                _copy(cur, payloads)
                cur.execute("release savepoint rollups")
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                raise   # the connection is gone: the batch goes to the spool, roll-ups with it
            except psycopg2.Error as error:
                cur.execute("rollback to savepoint rollups")
                log.error("roll-ups of %d late flows not written (%s); the roll-up job rebuilds their hour",
                          len(flows), error)
                self._count("failed", len(flows))
                return
        self._count("late", len(flows))

    # --- flushing ------------------------------------------------------------------------
    def due(self) -> bool:
        with self._lock:
            if self._pending_flows >= self.max_pending:
                return True
            if not self._pending:
                return False
            first = min(int(p.ts_start.min()) for p in self._pending)
        return _closes(first) <= int(self.clock() * 1_000_000)

    def flush(self, everything: bool = False) -> int:
        """Write the roll-ups of the hours that have closed (all held hours with ``everything``,
        or when more than ``max_pending`` flows are held); returns the flows written."""
        with self._flush_lock:
            with self._lock:
                if not self._pending:
                    return 0
                held = columnar.FlowColumns.concat(self._pending)
                partial = everything or self._pending_flows >= self.max_pending
                ready = np.ones(len(held), bool) if partial else _closes(held.ts_start) <= int(self.clock() * 1_000_000)
                rest = held.take(~ready)
                self._pending = [rest] if len(rest) else []
                self._pending_flows = len(rest)
                accounts, services = list(self.accounts), list(self.services)
            flows = held.take(ready) if not ready.all() else held
            if not len(flows):
                return 0
            try:
                return self._write(flows, accounts, services)
            except Exception as error:
                log.error("roll-ups of %d flows not written (%s); the roll-up job rebuilds their hours",
                          len(flows), error, exc_info=not isinstance(error, psycopg2.Error))
                self._count("failed", len(flows))
                return 0

    def _write(self, flows: columnar.FlowColumns, accounts, services) -> int:
        """One transaction: the roll-ups of ``flows``. A light account-hour gets its raw marker
        even when this is only part of its hour (at a stop, or past ``max_pending``): a marker
        makes reports read the whole account-hour raw, whatever other parts wrote."""
        conn = psycopg2.connect(self.dsn, connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("select pg_advisory_xact_lock_shared(%s)", (rollups.WRITE_LOCK,))
                cur.execute("select extract(epoch from done_until)::bigint * 1000000 "
                            "from ispflow.analytics_watermarks where name = %s", (rollups.WATERMARK,))
                row = cur.fetchone()
                if row is not None:
                    # Hours the job has checked were rebuilt from the raw flows, these included.
                    fresh = flows.ts_start // HOUR_US * HOUR_US + HOUR_US > row[0]
                    skipped = len(flows) - int(fresh.sum())
                    if skipped:
                        self._count("skipped", skipped)
                        flows = flows.take(fresh)
                if len(flows):
                    began = time.monotonic()
                    rows = columnar.compute(flows, accounts, services)
                    payloads = [(r.table, encode_rows(r.columns)) for r in rows]
                    computed = time.monotonic()
                    _copy(cur, payloads)
            conn.commit()
        finally:
            conn.close()
        if len(flows):
            log.info("rolled up %d flows: %d rows computed in %.2f s, written in %.2f s", len(flows),
                     sum(len(r) for r in rows), computed - began, time.monotonic() - computed)
        self._count("rolled_up", len(flows))
        return len(flows)

    def _count(self, how: str, flows: int) -> None:
        with self._lock:
            self.counters[how] += flows


def _copy(cur, payloads) -> None:
    for table, payload in payloads:
        cur.copy_expert(copy_sql(table), io.BytesIO(payload))
