"""The collector's Prometheus metrics, served over HTTP on ``ISPFLOW_COLLECTOR_METRICS_LISTEN``.

Nothing is counted twice: at each scrape the families are read from the counters the collector
keeps anyway (``Collector.counters``, the exporters' totals, the sFlow agents' interface
counters), so the receive path pays nothing for metrics. Batch latency is the one value
measured for them: the seconds a writer takes to COPY and commit one batch. Names and
labels are listed in docs/metrics.md.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..endpoints import parse_endpoint
from .sockets import kernel_drops

# counter key in Collector.counters -> (metric name without ispflow_collector_ and _total, help)
COUNTERS = {
    "packets": ("packets", "UDP datagrams received."),
    "bytes_received": ("received_bytes", "Bytes of UDP payload received."),
    "records": ("flows_decoded", "Flow and NAT records decoded."),
    "flows_stored": ("flows_stored", "Flows committed to the database."),
    "nat_stored": ("nat_events_stored", "NAT events committed to the database."),
    "decode_errors": ("decode_errors", "Datagrams that could not be decoded (wholly or in part)."),
    "lost_flows": ("lost_flows", "Flows the exporters' sequence numbers say never arrived."),
    "spooled_batches": ("spooled_batches", "Batches written to the spool while the database was behind or down."),
    "replayed_batches": ("replayed_batches", "Spooled batches stored once the database was back."),
    "spool_dropped_batches": ("spool_dropped_batches", "Batches dropped because the spool was full."),
    "untrusted_packets": ("untrusted_packets", "Datagrams dropped because their exporter is not trusted."),
    "module_disabled_packets": ("module_disabled_packets",
                                "Datagrams received and not stored because the module is disabled."),
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CollectorMetrics:
    """A prometheus_client custom collector over one ``Collector``, with its own registry."""

    def __init__(self, collector):
        self.collector = collector
        self.registry = CollectorRegistry(auto_describe=False)
        self.batch_latency = Histogram("ispflow_collector_batch_latency_seconds",
                                       "Seconds to COPY and commit one batch.",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(self)
        self._server = None

    def collect(self):
        c = self.collector
        with c._counter_lock:
            counters = dict(c.counters)
        for key, (name, doc) in COUNTERS.items():
            family = CounterMetricFamily(f"ispflow_collector_{name}", doc)
            family.add_metric([], counters.get(key, 0))
            yield family
        drops = CounterMetricFamily("ispflow_collector_kernel_drops",
                                    "Datagrams the kernel dropped on a full receive buffer.")
        sockets = [s for s in c.sockets if s.fileno() >= 0]
        drops.add_metric([], kernel_drops(sockets) if sockets else counters.get("kernel_drops", 0))
        yield drops
        spool = GaugeMetricFamily("ispflow_collector_spool_files", "Batches waiting in the spool.")
        spool.add_metric([], len(c.spool))
        yield spool
        spool_bytes = GaugeMetricFamily("ispflow_collector_spool_bytes", "Bytes waiting in the spool.")
        spool_bytes.add_metric([], c.spool.size())
        yield spool_bytes
        database = GaugeMetricFamily("ispflow_collector_database_up", "1 while the database takes batches.")
        database.add_metric([], 1 if c.database_up.is_set() else 0)
        yield database
        if c.rollups is not None:
            rolled = CounterMetricFamily("ispflow_collector_rollup_flows",
                                         "Flows added to the roll-ups by the collector: at their hour's close "
                                         "(rolled_up), with their batch (late), or not (failed, skipped: the "
                                         "roll-up job rebuilds those hours).", labels=["how"])
            for how, value in c.rollups.counters.items():
                rolled.add_metric([how], value)
            yield rolled
        yield from self._exporters()
        yield from self._sflow_interfaces()

    def _exporters(self):
        families = {
            "packets": CounterMetricFamily("ispflow_exporter_packets", "Datagrams from the exporter.",
                                           labels=["exporter"]),
            "flows": CounterMetricFamily("ispflow_exporter_flows", "Records decoded from the exporter.",
                                         labels=["exporter"]),
            "lost_flows": CounterMetricFamily("ispflow_exporter_lost_flows", "Flows lost by sequence gaps.",
                                              labels=["exporter"]),
            "decode_errors": CounterMetricFamily("ispflow_exporter_decode_errors", "Malformed datagrams.",
                                                 labels=["exporter"]),
        }
        skew = GaugeMetricFamily("ispflow_exporter_clock_skew_seconds",
                                 "Our clock minus the exporter's export time, at its last datagram.",
                                 labels=["exporter"])
        seen = GaugeMetricFamily("ispflow_exporter_last_seen_timestamp_seconds",
                                 "When the exporter's last datagram arrived.", labels=["exporter"])
        with self.collector.exporters._lock:
            totals = {address: vars(counters).copy() for address, counters in self.collector.exporters.totals.items()}
        for address, values in sorted(totals.items()):
            for key, family in families.items():
                family.add_metric([address], values[key])
            if values["clock_skew_s"] is not None:
                skew.add_metric([address], values["clock_skew_s"])
            if values["last_seen"] is not None:
                seen.add_metric([address], values["last_seen"])
        yield from families.values()
        yield skew
        yield seen

    def _sflow_interfaces(self):
        octets = CounterMetricFamily("ispflow_sflow_interface_octets",
                                     "Interface octets from sFlow counter samples.",
                                     labels=["exporter", "ifindex", "direction"])
        errors = CounterMetricFamily("ispflow_sflow_interface_errors",
                                     "Interface errors from sFlow counter samples.",
                                     labels=["exporter", "ifindex", "direction"])
        interfaces = dict(self.collector.decoder.sflow.interfaces)
        for (exporter, index), values in sorted(interfaces.items()):
            for direction in ("in", "out"):
                octets.add_metric([exporter, str(index), direction], values[f"{direction}_octets"])
                errors.add_metric([exporter, str(index), direction], values[f"{direction}_errors"])
        yield octets
        yield errors

    # -- the HTTP listener ---------------------------------------------------------------------
    def serve(self, listen: str) -> int:
        """Serve ``/metrics`` on HOST:PORT (port 0: any free one); returns the port."""
        host, port = parse_endpoint(listen, listen=True)
        self._server, _ = start_http_server(port, addr=host, registry=self.registry)
        return self._server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
