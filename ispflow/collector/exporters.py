"""Every device that sends us NetFlow: registered on its first packet, counted in memory,
and written to ``ispflow.exporters`` at each heartbeat (counters as deltas).

What the collector does not store is counted here too, by reason, in ``ExporterCounters.dropped``
(the ``exporters.dropped`` JSON column): a new reason is one more key, no schema change.
Reasons so far: ``untrusted_packets`` (sender not trusted), ``refused_domains`` (packets of an
observation domain over the cap), ``refused_templates`` / ``refused_templates_too_long``
(templates over the per-domain cap or with too many fields), ``addressless_records``
(records naming no address, not traffic evidence).
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ExporterCounters:
    version: int | None = None
    packets: int = 0
    flows: int = 0
    lost_flows: int = 0
    decode_errors: int = 0
    last_seen: float | None = None
    last_flow_at: float | None = None
    clock_skew_s: float | None = None
    sampling_rate: int | None = None
    dropped: Counter = field(default_factory=Counter)  # reason -> count (see the module's docstring)


class ExporterRegistry:
    def __init__(self):
        self._ids: dict[str, int] = {}
        self._pending: dict[str, ExporterCounters] = {}
        self.totals: dict[str, ExporterCounters] = {}  # since start, for the metrics endpoint
        self._lock = threading.Lock()

    def packet(self, address: str, version: int | None, records: int, lost: int, export_time: float | None,
               received_at: float, sampling_rate: int | None = None) -> None:
        with self._lock:
            for c in (self._pending.setdefault(address, ExporterCounters()),
                      self.totals.setdefault(address, ExporterCounters())):
                c.packets += 1
                c.flows += records
                c.lost_flows += max(lost, 0)
                c.last_seen = received_at
                if records:
                    c.last_flow_at = received_at
                if version is not None:
                    c.version = version
                if export_time:
                    c.clock_skew_s = received_at - export_time
                if sampling_rate:
                    c.sampling_rate = sampling_rate

    def error(self, address: str, received_at: float, records: int = 0) -> None:
        """A malformed packet; ``records`` from its valid sets before the bad one were kept."""
        with self._lock:
            for c in (self._pending.setdefault(address, ExporterCounters()),
                      self.totals.setdefault(address, ExporterCounters())):
                c.packets += 1
                c.decode_errors += 1
                c.last_seen = received_at
                if records:
                    c.flows += records
                    c.last_flow_at = received_at

    def dropped(self, address: str, reason: str, count: int = 1, received_at: float | None = None) -> None:
        """``count`` packets or records of ``address`` not stored, for ``reason``; a packet seen if ``received_at``."""
        with self._lock:
            c = self._pending.setdefault(address, ExporterCounters())
            c.dropped[reason] += count
            if received_at is not None:
                c.packets += 1
                c.last_seen = received_at

    def ids(self, conn, addresses: list[str]) -> np.ndarray:
        """Database ids of these exporter addresses, registering new ones (caller commits)."""
        missing = [a for a in addresses if a not in self._ids]
        if missing:
            with conn.cursor() as cur:
                for address in missing:
                    cur.execute(
                        "insert into ispflow.exporters (address, last_seen) values (%s, now()) "
                        "on conflict (address) do update set address = excluded.address returning id",
                        (address,),
                    )
                    self._ids[address] = cur.fetchone()[0]
        return np.array([self._ids[a] for a in addresses] or [0], dtype=np.int64)

    def flush(self, conn) -> int:
        """Add the counted deltas to the table; returns how many exporters were updated."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            self.ids(conn, list(pending))
            with conn.cursor() as cur:
                for address, c in pending.items():
                    cur.execute(
                        """update ispflow.exporters set
                               netflow_version = coalesce(%s, netflow_version),
                               packets = packets + %s, flows = flows + %s, lost_flows = lost_flows + %s,
                               decode_errors = decode_errors + %s,
                               last_seen = greatest(last_seen, to_timestamp(%s)),
                               last_flow_at = coalesce(greatest(last_flow_at, to_timestamp(%s)), last_flow_at),
                               clock_skew_s = coalesce(%s, clock_skew_s),
                               sampling_rate = coalesce(%s, sampling_rate),
                               dropped = (select coalesce(jsonb_object_agg(reason, total), '{}')
                                          from (select reason, sum(n::bigint) as total
                                                from (select * from jsonb_each_text(dropped)
                                                      union all select * from jsonb_each_text(%s::jsonb)) as d(reason, n)
                                                group by reason) as sums)
                           where address = %s""",
                        (c.version, c.packets, c.flows, c.lost_flows, c.decode_errors, c.last_seen or time.time(),
                         c.last_flow_at, c.clock_skew_s, c.sampling_rate, json.dumps(c.dropped), address),
                    )
        except Exception:
            with self._lock:  # keep the counts for the next heartbeat
                for address, c in pending.items():
                    self._merge(address, c)
            raise
        return len(pending)

    def _merge(self, address: str, old: ExporterCounters) -> None:
        c = self._pending.setdefault(address, ExporterCounters())
        c.packets += old.packets
        c.flows += old.flows
        c.lost_flows += old.lost_flows
        c.decode_errors += old.decode_errors
        c.dropped.update(old.dropped)
        for name in ("version", "last_seen", "last_flow_at", "clock_skew_s", "sampling_rate"):
            if getattr(c, name) is None:
                setattr(c, name, getattr(old, name))

    def forget_ids(self) -> None:
        """After a database outage the rows may be gone (e.g. a restored backup): ask again."""
        self._ids.clear()
