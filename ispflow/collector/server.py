"""The collector process: UDP in, flows into TimescaleDB within a second, nothing lost.

Threads, each with one job:
- the receiver reads every socket, hands packets to the decoder (cheap header parsing) and,
  every ``flush_interval`` or when enough records are queued, drains the decoder into column
  batches, attributes them to subscribers and queues them for the writers;
- writers (one database connection each, so PostgreSQL works on both cores) COPY batches;
  a batch the database cannot take, or that waits too long for a writer during a burst, goes
  to the spool; while the spool holds anything, new batches follow it there and each writer
  stores the oldest spooled batch instead, so order is kept and every connection replays;
- the keeper replays the spool when the database is back and no batch arrives, writes the heartbeat and the
  exporters' counters, saves the decoder's state (copied under the decoder lock, encoded and
  written outside it, so receiving never waits for the disk) and reloads the subscriber
  directory every ``directory_refresh`` as a fallback;
- the listener waits for PostgreSQL notifications (``ispflow_collector``): a subscriber import
  or sync, a settings change, an exporter trusted or untrusted, a router provisioned. It reloads
  the directory or the trusted addresses at once, so they reach this collector within a second.

Only trusted exporters' packets are decoded (``trust.py``); others are counted and dropped.
With ``trust_first`` (``ispflow collector --trust-first-exporter``, which the README's run
command uses) the first sender is trusted, and audited, while no exporter is trusted at all.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import select
import selectors
import socket
import threading
import time
from pathlib import Path

import psycopg2

import sqlalchemy as sa

from .. import module_settings
from ..database import engine_for, psycopg2_dsn
from .attribution import SubscriberDirectory
from . import trust
from .decoder import DecodeError, FlowDecoder, StateLimit
from .enrich import EnrichedFlows, enrich
from .exporters import ExporterRegistry
from .holders import Holders
from ..endpoints import parse_endpoint
from .metrics import CollectorMetrics
from .rollup_keeper import RollupKeeper
from .sockets import kernel_drops, open_udp, receive_buffer
from .spool import Spool
from .writer import copy_flows, copy_nat, encode, encode_nat

log = logging.getLogger("ispflow.collector")
DATABASE_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
CHANNEL = "ispflow_collector"  # notified by the collector_exporter_trust migration's triggers
_MAX_UNTRUSTED = 1000  # untrusted senders listed per process (spoofed floods must not grow the table)


class RateLimitedLog:
    """At most one message per key per ``period`` seconds, with the count of the others."""

    def __init__(self, period: float = 10.0):
        self.period = period
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, message: str, *args) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(key, (0.0, 0))
        if now - last >= self.period:
            suffix = f" ({suppressed} similar suppressed)" if suppressed else ""
            log.warning(message + suffix, *args)
            self._last[key] = (now, 0)
        else:
            self._last[key] = (last, suppressed + 1)


class Collector:
    def __init__(self, database_url: str, listen: list[str], spool_dir: str, state_dir: str,
                 spool_max_bytes: int = 1 << 30, writers: int = 2, flush_interval: float = 0.5,
                 max_batch: int = 50_000, heartbeat_interval: float = 5.0, directory_refresh: float = 60.0,
                 name: str | None = None, trust_first: bool = False, metrics_listen: str | None = None,
                 rollups: bool = True):
        self.database_url = database_url
        self.dsn = psycopg2_dsn(database_url)
        self.listen = [parse_endpoint(value, listen=True) for value in listen]
        self.spool = Spool(spool_dir, spool_max_bytes)
        self.state_path = Path(state_dir) / "templates.json"
        self.trust_path = Path(state_dir) / "trusted.json"  # the last known trusted set, for a start without database
        self.trust_first = trust_first
        self.writers = writers
        self.flush_interval = flush_interval
        # How long a drained batch may wait for a writer before it goes to the spool. Meanwhile
        # the kernel's receive buffer (256 MB asked for) holds what arrives: a burst is absorbed
        # in memory; the spool is for a database that is down or slow for longer.
        self.spill_after = 5.0
        self.max_batch = max_batch
        self.heartbeat_interval = heartbeat_interval
        self.directory_refresh = directory_refresh
        self.name = name or f"{socket.gethostname()}:{'+'.join(listen)}"
        self.decoder = FlowDecoder()
        self._decoder_lock = threading.Lock()  # the receiver decodes, the keeper saves templates
        self.exporters = ExporterRegistry()
        self.holders = Holders()
        self.directory = SubscriberDirectory([])
        self.trusted: frozenset[str] | None = None  # None until known (database or saved copy)
        self._adopted: str | None = None            # trusted on first use, not yet written to the database
        self._canonical: dict[str, str] = {}
        self._untrusted: set[str] = set()
        self.sockets: list[socket.socket] = []
        self.batches: queue.Queue = queue.Queue(maxsize=writers * 4)
        self.stopping = threading.Event()
        self.database_up = threading.Event()
        self.listening = threading.Event()  # set while notifications are being received
        self._directory_ready = threading.Event()  # cleared while a notified directory change loads
        self._directory_ready.set()
        self._spool_lock = threading.RLock()  # writers vs replay: order of stored batches
        self._claimed: set = set()            # spooled files a thread is storing now
        self._threads: list[threading.Thread] = []
        self._errors = RateLimitedLog()
        self.started_at = time.time()
        self.counters = dict(packets=0, bytes_received=0, records=0, flows_stored=0, nat_stored=0,
                             decode_errors=0, lost_flows=0, spooled_batches=0, replayed_batches=0,
                             kernel_drops=0, spool_dropped_batches=0, untrusted_packets=0,
                             module_disabled_packets=0)
        # Switched off in the module settings: datagrams are counted, not decoded nor stored.
        self.module_enabled = threading.Event()
        self.module_enabled.set()
        self._counter_lock = threading.Lock()
        self.metrics = CollectorMetrics(self)
        # The analytics' roll-ups of what is stored, kept from memory (off: the job computes them).
        self.rollups = RollupKeeper(self.dsn) if rollups else None
        self.metrics_listen, self.metrics_port = metrics_listen, None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._load_state()
        self._reload_trust()
        for host, port in self.listen:
            self.sockets.append(open_udp(host, port))
        for sock in self.sockets:
            log.info("listening on %s (receive buffer %d bytes)", sock.getsockname()[:2], receive_buffer(sock))
        self._refresh_directory()
        self._refresh_enabled()
        self._check_database()
        if self.metrics_listen:
            self.metrics_port = self.metrics.serve(self.metrics_listen)
        self._spawn(self._receive, "receiver")
        for i in range(self.writers):
            self._spawn(self._write, f"writer-{i}")
        self._spawn(self._keep, "keeper")
        if self.rollups is not None:
            self._spawn(self._roll_up, "rollups")
        self._spawn(self._listen, "listener")

    def ports(self) -> list[int]:
        return [s.getsockname()[1] for s in self.sockets]

    def stop(self, timeout: float = 30.0) -> None:
        """Stop receiving, store (or spool) everything received, save the templates."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        for sock in self.sockets:
            sock.close()
        self._save_state()
        self._heartbeat()
        self.metrics.close()

    def _spawn(self, target, name) -> None:
        thread = threading.Thread(target=self._guard(target), name=f"collector-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guard(self, target):
        def run():
            while True:
                try:
                    target()
                    return
                except Exception:  # a bug must not stop collection: log and go on
                    log.exception("collector thread %s failed; restarting it", threading.current_thread().name)
                    time.sleep(0.5)
        return run

    def _count(self, **deltas) -> None:
        with self._counter_lock:
            for key, value in deltas.items():
                self.counters[key] += value

    # --- receiving ------------------------------------------------------------------------
    def _receive(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in self.sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        buffer = bytearray(65536)
        view = memoryview(buffer)
        queued, last_drain = 0, time.monotonic()
        while not self.stopping.is_set():
            for key, _ in selector.select(timeout=min(0.1, self.flush_interval)):
                sock = key.fileobj
                for _ in range(256):  # take what is there, then let others run
                    try:
                        size, peer = sock.recvfrom_into(buffer)
                    except (BlockingIOError, InterruptedError):
                        break
                    queued += self._packet(bytes(view[:size]), peer[0])
            now = time.monotonic()
            if queued and (queued >= self.max_batch or now - last_drain >= self.flush_interval):
                self._drain()
                queued, last_drain = 0, now
            elif not queued:
                last_drain = now
        self._drain()
        self.batches.put(None)  # tell the writers to finish

    def _packet(self, packet: bytes, exporter: str) -> int:
        if not self.module_enabled.is_set():
            self._count(packets=1, bytes_received=len(packet), module_disabled_packets=1)
            return 0
        received_at = time.time()
        self._count(packets=1, bytes_received=len(packet))
        exporter = self._canonical_address(exporter)
        if not self._trusted(exporter):
            self._count(untrusted_packets=1)
            if exporter in self._untrusted or len(self._untrusted) < _MAX_UNTRUSTED:
                self._untrusted.add(exporter)
                self.exporters.dropped(exporter, "untrusted_packets", 1, received_at)
            self._errors.warning("untrusted", "dropped a packet from %s: not a trusted exporter "
                                 "(ispflow exporters trust %s)", exporter, exporter)
            return 0
        try:
            with self._decoder_lock:
                info = self.decoder.feed(packet, exporter, received_at)
        except StateLimit as error:  # counted by the decoder, with the other refusals
            self.exporters.packet(exporter, None, 0, 0, None, received_at)
            self._errors.warning("limit " + exporter, "%s", error)
            return 0
        except DecodeError as error:
            kept = error.info.records if error.info is not None else 0  # from the valid sets before the bad one
            self._count(decode_errors=1, records=kept)
            self.exporters.error(exporter, received_at, kept)
            self._errors.warning(exporter, "malformed packet from %s: %s", exporter, error)
            return kept
        except Exception as error:  # the decoder promises DecodeError only; never crash on a packet
            self._count(decode_errors=1)
            self.exporters.error(exporter, received_at)
            self._errors.warning(exporter, "packet from %s could not be decoded (%r)", exporter, error)
            return 0
        self._count(records=info.records, lost_flows=info.lost)
        self.exporters.packet(exporter, info.version, info.records, info.lost, info.export_time, received_at,
                              info.sampling_rate)
        return info.records

    def _canonical_address(self, address: str) -> str:
        known = self._canonical.get(address)
        if known is None:
            if len(self._canonical) > 100_000:  # spoofed sources must not grow it forever
                self._canonical.clear()
            try:
                known = trust.canonical(address)
            except ValueError:  # not an IP address (sockets give none such): never trusted
                known = address
            self._canonical[address] = known
        return known

    def _trusted(self, exporter: str) -> bool:
        trusted = self.trusted
        if trusted is not None and exporter in trusted:
            return True
        if self.trust_first and trusted is not None and not trusted and self._adopted is None:
            self._adopted = exporter
            self.trusted = frozenset({exporter})
            log.warning("trusting %s, the first exporter to send (--trust-first-exporter); "
                        "no other sender is trusted until an admin trusts it", exporter)
            return True
        return False

    def _drain(self) -> None:
        with self._decoder_lock:
            flows, nat = self.decoder.drain()
        self._collect_dropped()
        if len(flows):
            # Flows received after a directory change was committed and notified are attributed
            # with the new directory: wait for a reload under way (the socket buffer holds meanwhile).
            self._directory_ready.wait(10)
            self._enqueue(enrich(flows, self.directory))
        if len(nat):
            self._enqueue(nat)

    def _collect_dropped(self) -> None:
        """Move the decoder's refusals to the exporters' counters (at each drain and heartbeat)."""
        with self._decoder_lock:
            dropped = self.decoder.take_dropped()
        for (exporter, reason), count in dropped.items():
            self.exporters.dropped(exporter, reason, count)

    def _enqueue(self, item) -> None:
        try:
            self.batches.put(item, timeout=self.spill_after)
        except queue.Full:  # writers are behind: keep receiving, park the batch on disk
            self._to_spool(item)

    # --- writing --------------------------------------------------------------------------
    def _write(self) -> None:
        conn = None
        while True:
            item = self.batches.get()
            if item is None:
                self.batches.put(None)  # let the other writers see it too
                break
            if not self.database_up.is_set():
                self._to_spool(item)
                continue
            claimed = None
            with self._spool_lock:
                behind = len(self.spool) > 0
                if behind:
                    # Batches wait on disk: this one goes behind them and the oldest is stored
                    # instead, so the order holds and every writer helps to empty the spool.
                    self._to_spool(item)
                    claimed = self._claim_oldest()
            if claimed is not None:
                item = self.spool.load(claimed)
            elif behind:
                continue  # every spooled file, this one too, is being stored by another thread
            try:
                conn = conn if conn is not None and not conn.closed else psycopg2.connect(self.dsn)
                self._store(conn, item)
                if claimed is not None:
                    self._replayed(claimed)
            except DATABASE_ERRORS as error:
                self.database_up.clear()
                self._errors.warning("database", "database unavailable (%s); spooling batches", error)
                if claimed is not None:
                    self._release(claimed)  # stays in the spool, in its place
                else:
                    self._to_spool(item)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _claim_oldest(self):
        """The oldest spooled file no thread is storing, now claimed (call under ``_spool_lock``)."""
        for path in self.spool.files():
            if path not in self._claimed:
                self._claimed.add(path)
                return path
        return None

    def _replayed(self, path) -> None:
        with self._spool_lock:
            self.spool.remove(path)
            self._claimed.discard(path)
        self._count(replayed_batches=1)

    def _release(self, path) -> None:
        with self._spool_lock:
            self._claimed.discard(path)

    def _store(self, conn, item) -> None:
        started = time.monotonic()
        try:
            ids = self.exporters.ids(conn, item.flows.exporters if isinstance(item, EnrichedFlows)
                                     else item.exporters)
            if isinstance(item, EnrichedFlows):
                on_time, late = self._rollup_parts(item, ids)
                copy_flows(conn, encode(item, ids, self.holders.ids(conn, item.subscribers)))
                if late is not None:
                    self.rollups.write_late(conn, late)
                conn.commit()
                self._count(flows_stored=len(item))
                if on_time is not None:
                    self.rollups.add(on_time)
            else:
                subscriber = self.directory.lookup(item.family, item.private_addr, item.ts)
                copy_nat(conn, encode_nat(item, ids, subscriber, self.directory.subscribers))
                conn.commit()
                self._count(nat_stored=len(item))
            self.metrics.batch_latency.observe(time.monotonic() - started)
        except DATABASE_ERRORS:
            raise
        except psycopg2.Error:
            conn.rollback()
            raise

    def _rollup_parts(self, item: EnrichedFlows, ids):
        """(flows of open hours, flows of closed hours) for the roll-ups, or Nones: without
        roll-ups, or when they fail (logged; flows are stored all the same)."""
        if self.rollups is None:
            return None, None
        try:
            return self.rollups.split(self.rollups.columns(item, ids))
        except Exception as error:
            self._errors.warning("rollups", "roll-ups of a batch could not be prepared (%r); the roll-up job "
                                            "rebuilds its hours", error)
            return None, None

    def _roll_up(self) -> None:
        """Write each hour's roll-ups when it closes, and what is held once the writers stop."""
        while True:
            if self.stopping.is_set() and all(not t.is_alive() for t in self._threads
                                              if t.name.startswith("collector-writer")):
                self.rollups.flush(everything=True)
                return
            if self.rollups.due():
                self.rollups.flush()
            self.stopping.wait(1.0)

    def _to_spool(self, item) -> None:
        with self._spool_lock:
            if self.spool.put(item):
                self._count(spooled_batches=1)
            else:
                self._count(spool_dropped_batches=1)

    # --- keeping: replay, heartbeat, state, directory ----------------------------------------
    def _keep(self) -> None:
        last_beat = last_directory = 0.0
        while True:
            stopping = self.stopping.is_set()
            now = time.monotonic()
            if not self.database_up.is_set():
                self._check_database()
            if self.database_up.is_set() and len(self.spool):
                self._replay()
            if self._adopted is not None:
                self._record_adoption()
            if now - last_beat >= self.heartbeat_interval or stopping:
                self._refresh_enabled()
                self._heartbeat()
                self._save_state()
                last_beat = now
            if now - last_directory >= self.directory_refresh:
                self._refresh_directory()
                last_directory = now
            if stopping and all(not t.is_alive() for t in self._threads if t.name.startswith("collector-writer")):
                if not len(self.spool) or not self.database_up.is_set():
                    return
            time.sleep(0.2)

    def _check_database(self) -> None:
        try:
            psycopg2.connect(self.dsn, connect_timeout=3).close()
        except DATABASE_ERRORS:
            return
        self.exporters.forget_ids()
        self.database_up.set()
        log.info("database reachable; %d spooled batches to replay", len(self.spool))

    def _replay(self) -> None:
        try:
            conn = psycopg2.connect(self.dsn, connect_timeout=3)
        except DATABASE_ERRORS:
            self.database_up.clear()
            return
        try:
            while True:
                with self._spool_lock:
                    path = self._claim_oldest()
                if path is None:
                    return
                try:
                    self._store(conn, self.spool.load(path))
                except BaseException:
                    self._release(path)
                    raise
                self._replayed(path)
        except DATABASE_ERRORS as error:
            self.database_up.clear()
            self._errors.warning("database", "database lost during replay (%s)", error)
        finally:
            conn.close()

    def _heartbeat(self) -> None:
        self._collect_dropped()
        with self._counter_lock:
            open_sockets = [s for s in self.sockets if s.fileno() >= 0]
            if open_sockets:
                self.counters["kernel_drops"] = kernel_drops(open_sockets)
            self.counters["spool_files"] = len(self.spool)
            counters = dict(self.counters)
        try:
            conn = psycopg2.connect(self.dsn, connect_timeout=3)
        except DATABASE_ERRORS:
            return
        try:
            with conn.cursor() as cur:
                cur.execute(
                    """insert into ispflow.collector_heartbeats (collector, hostname, pid, started_at, beat_at, counters)
                       values (%s, %s, %s, to_timestamp(%s), now(), %s)
                       on conflict (collector) do update set hostname = excluded.hostname, pid = excluded.pid,
                           started_at = excluded.started_at, beat_at = now(), counters = excluded.counters""",
                    (self.name, socket.gethostname(), os.getpid(), self.started_at, json.dumps(counters)),
                )
            self.exporters.flush(conn)
            conn.commit()
        except DATABASE_ERRORS:
            pass
        finally:
            conn.close()

    def _listen(self) -> None:
        """Reload what a notification names, within a second of the change's commit."""
        conn = None
        try:
            while not self.stopping.is_set():
                if conn is None:
                    try:
                        conn = psycopg2.connect(self.dsn, connect_timeout=3)
                        conn.autocommit = True
                        with conn.cursor() as cur:
                            cur.execute(f"listen {CHANNEL}")
                    except DATABASE_ERRORS:
                        conn = None
                        self.stopping.wait(1.0)
                        continue
                    self._reload_trust()  # what changed while nobody listened
                    self._refresh_directory()
                    self.listening.set()
                try:
                    if not select.select([conn], [], [], 0.5)[0]:
                        continue
                    conn.poll()
                except (*DATABASE_ERRORS, OSError):
                    self.listening.clear()
                    conn.close()
                    conn = None
                    continue
                kinds = {n.payload for n in conn.notifies}
                conn.notifies.clear()
                if "exporters" in kinds:
                    self._reload_trust()
                if "directory" in kinds:
                    self._directory_ready.clear()
                    try:
                        self._refresh_directory()
                    finally:
                        self._directory_ready.set()
        finally:
            self.listening.clear()
            if conn is not None:
                conn.close()

    def _reload_trust(self) -> None:
        """The trusted addresses from the database, else (unreachable) as last saved."""
        try:
            with engine_for(self.database_url).connect() as conn:
                found = trust.trusted_addresses(conn)
        except sa.exc.OperationalError:
            if self.trusted is None:
                self.trusted = self._saved_trust()
            return
        adopted = self._adopted
        self.trusted = found | {adopted} if adopted else found
        try:
            self.trust_path.parent.mkdir(parents=True, exist_ok=True)
            self.trust_path.write_text(json.dumps(sorted(found)))
        except OSError as error:
            self._errors.warning("trust", "cannot save the trusted exporters to %s: %s", self.trust_path, error)

    def _saved_trust(self) -> frozenset[str] | None:
        try:
            return frozenset(trust.canonical(a) for a in json.loads(self.trust_path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as error:
            log.warning("ignoring the saved trusted exporters in %s: %s", self.trust_path, error)
            return None

    def _record_adoption(self) -> None:
        """Write the exporter trusted on first use to the database, with its audit entry."""
        address = self._adopted
        try:
            with engine_for(self.database_url).begin() as conn:
                trust.trust(conn, address, actor=f"collector {self.name}",
                            reason="first exporter, trusted on first use (--trust-first-exporter)")
        except sa.exc.OperationalError:
            return  # next time round
        self._adopted = None
        self._reload_trust()

    def _refresh_directory(self) -> None:
        """Reload the subscriber directory and the ISP's own prefixes (kept if unreachable)."""
        try:
            with engine_for(self.database_url).connect() as conn:
                own = module_settings.load(conn).own_prefixes
                self.directory = SubscriberDirectory.load(conn, own)
        except sa.exc.OperationalError:
            return

    def _refresh_enabled(self) -> None:
        """Follow the module's on/off switch (kept as it was while the database is unreachable)."""
        try:
            with engine_for(self.database_url).connect() as conn:
                enabled = module_settings.load(conn).enabled
        except sa.exc.OperationalError:
            return
        if enabled != self.module_enabled.is_set():
            log.warning("the NetFlow module was switched %s in its settings; %s", "on" if enabled else "off",
                        "storing flows again" if enabled else "datagrams are counted and dropped")
            (self.module_enabled.set if enabled else self.module_enabled.clear)()

    def _load_state(self) -> None:
        try:
            self.decoder.load_state(self.state_path.read_bytes())
        except FileNotFoundError:
            return
        except DecodeError as error:
            log.warning("ignoring saved templates in %s: %s", self.state_path, error)

    def _save_state(self) -> None:
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.state_path.with_suffix(".tmp")
            with self._decoder_lock:
                snapshot = self.decoder.snapshot()
            temporary.write_bytes(self.decoder.encode_state(snapshot))
            os.replace(temporary, self.state_path)
        except OSError as error:
            self._errors.warning("state", "cannot save templates to %s: %s", self.state_path, error)
