"""sFlow from a real agent (pmacctd's sfprobe) and from built datagrams is stored like NetFlow:
one row per sampled packet, counts scaled by the sampling rate, the exporter registered as sFlow."""
import pytest
import sqlalchemy as sa

from ispflow.collector.sflow import SFLOW_VERSION_CODE

from . import sflow_packets as sf
from .netflow_tools import pmacctd_sfprobe, send
from .pcap import Flow, write_pcap
from .test_collector_exporters import FLOWS, key


# pmacctd stops before sampling the last packets of a capture: a trailing flow of our own
# carries them, so that every packet of FLOWS reaches the collector.
TRAILER = Flow("10.9.9.9", "192.0.2.99", 9999, 9, 17, 50, 10, max(f.start for f in FLOWS) + 0.2)


@pytest.fixture(scope="module")
def pcap(tmp_path_factory):
    path = tmp_path_factory.mktemp("pcap") / "flows.pcap"
    write_pcap(path, FLOWS + [TRAILER])
    return path


def test_pmacct_sfprobe_samples_every_packet_of_the_capture(pcap, collector, db_engine, tmp_path):
    datagrams = pmacctd_sfprobe(pcap, tmp_path)
    assert datagrams, "pmacctd sent nothing"
    send(datagrams, collector.ports()[0])
    rows = collector.wait_for_flows(db_engine, sum(f.packets for f in FLOWS) + 1)
    expected = sorted((f.src, f.dst, f.sport, f.dport, f.protocol, 1, f.ip_bytes())
                      for f in FLOWS for _ in range(f.packets))
    assert sorted(key(r) for r in rows if r["sa"] != TRAILER.src) == expected


def test_sampled_packets_are_scaled_by_the_sampling_rate(collector, db_engine):
    flow = Flow("10.0.0.1", "198.51.100.1", 40001, 443, 6, 1, 100, 0)
    send([sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(flow))], rate=512)])], collector.ports()[0])
    rows = collector.wait_for_flows(db_engine, 1)
    assert [(r["packets"], r["bytes"], r["sampling_rate"]) for r in rows] == [(512, 512 * flow.ip_bytes(), 512)]


def test_an_sflow_agent_is_registered_as_an_sflow_exporter(collector, db_engine):
    flow = Flow("10.0.0.1", "198.51.100.1", 40001, 443, 6, 1, 100, 0)
    send([sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(flow))], sequence=1)]),
          sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(flow))], sequence=4)], sequence=2)],
         collector.ports()[0])
    collector.wait_for_flows(db_engine, 2)
    collector.stop()
    with db_engine.connect() as conn:
        exporter = conn.execute(sa.text("select netflow_version, flows, lost_flows from ispflow.exporters")).one()
    assert tuple(exporter) == (SFLOW_VERSION_CODE, 2, 2)


def test_the_status_page_names_an_sflow_exporter(collector, db_engine, auth, client):
    flow = Flow("10.0.0.1", "198.51.100.1", 40001, 443, 6, 1, 100, 0)
    send([sf.datagram([sf.flow_sample([sf.raw_header(sf.flow_frame(flow))])])], collector.ports()[0])
    collector.wait_for_flows(db_engine, 1)
    collector.stop()
    auth.login("admin")
    assert b"<td>sFlow v5</td>" in client.get("/netflow/status").data
