"""The collector's Prometheus endpoint: counters, spool, latency and per-exporter series, as a
scraper reads them over HTTP."""
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import synthetic
from ispflow.testing import RunningCollector

from . import sflow_packets as sf
from .decode_helpers import EXPORT
from .netflow_tools import send


def scrape(port: int) -> dict[tuple, float]:
    """{(sample name, labels...): value} from GET /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def collector(database_url, db_engine, tmp_path):
    running = RunningCollector(database_url, tmp_path, metrics_listen="127.0.0.1:0")
    running.start()
    yield running
    running.stop()


def test_the_collector_serves_metrics_on_its_own_port(collector):
    assert collector.metrics_port and scrape(collector.metrics_port)[("ispflow_collector_packets_total",)] == 0


def test_packets_flows_and_decode_errors_are_counted(collector, db_engine):
    flows = synthetic.generate_flows(5, seed=1)
    send(synthetic.v5_packets(flows, export_time=EXPORT) + [b"\x00\x05garbage"], collector.ports()[0])
    collector.wait_for_flows(db_engine, 5)
    metrics = scrape(collector.metrics_port)
    assert metrics[("ispflow_collector_packets_total",)] == 2
    assert metrics[("ispflow_collector_flows_stored_total",)] == 5
    assert metrics[("ispflow_collector_decode_errors_total",)] == 1
    assert metrics[("ispflow_exporter_flows_total", ("exporter", "127.0.0.1"))] == 5
    assert metrics[("ispflow_exporter_decode_errors_total", ("exporter", "127.0.0.1"))] == 1
    assert metrics[("ispflow_collector_batch_latency_seconds_count",)] >= 1
    assert metrics[("ispflow_collector_spool_files",)] == 0
    assert metrics[("ispflow_collector_database_up",)] == 1
    assert ("ispflow_collector_kernel_drops_total",) in metrics
    # Their hour closed long ago: rolled up in the transaction that stored them.
    assert metrics[("ispflow_collector_rollup_flows_total", ("how", "late"))] == 5
    assert metrics[("ispflow_collector_rollup_flows_total", ("how", "failed"))] == 0


def test_lost_flows_are_counted_per_exporter(collector, db_engine):
    flows = synthetic.generate_flows(40, seed=2)
    packets = synthetic.v5_packets(flows, export_time=EXPORT)  # 30 + 10 flows
    send([packets[1]], collector.ports()[0])  # the first packet's 30 flows never arrive...
    send([synthetic.v5_packets(flows[:5], export_time=EXPORT, sequence=70)[0]], collector.ports()[0])
    collector.wait_for_flows(db_engine, 15)
    metrics = scrape(collector.metrics_port)
    assert metrics[("ispflow_collector_lost_flows_total",)] == metrics[
        ("ispflow_exporter_lost_flows_total", ("exporter", "127.0.0.1"))] > 0


def test_sflow_interface_counters_are_exposed(collector):
    send([sf.datagram([sf.counter_sample([sf.interface_counters(7, 123_456, 654_321)])])], collector.ports()[0])

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = scrape(collector.metrics_port)
        key = ("ispflow_sflow_interface_octets_total", ("direction", "in"), ("exporter", "127.0.0.1"),
               ("ifindex", "7"))
        if key in metrics:
            break
        time.sleep(0.1)
    assert metrics[key] == 123_456
    assert metrics[("ispflow_sflow_interface_octets_total", ("direction", "out"), ("exporter", "127.0.0.1"),
                    ("ifindex", "7"))] == 654_321
