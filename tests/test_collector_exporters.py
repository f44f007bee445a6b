"""Flows from real third-party exporters are stored as the reference decoder (nfcapd +
nfdump) reads the very same datagrams, and as the capture they were made from."""
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from .netflow_tools import nfreplay, pmacctd, reference, send, softflowd
from .pcap import Flow, write_pcap

START = 1767225600.0  # 2026-01-01T00:00:00Z

FLOWS = [Flow(f"10.0.0.{i}", f"198.51.100.{i}", 40000 + i, 443, 6, 5 + i, 100 + i, START + i) for i in range(1, 9)] + [
    Flow("10.0.1.7", "192.0.2.53", 5353, 53, 17, 3, 60, START + 0.5),
    Flow("2001:db8:10::7", "2001:db8:99::1", 40100, 80, 6, 4, 200, START + 2.25),
]


@pytest.fixture(scope="module")
def pcap(tmp_path_factory):
    path = tmp_path_factory.mktemp("pcap") / "flows.pcap"
    write_pcap(path, FLOWS)
    return path


def stored_rows(db_engine):
    with db_engine.connect() as conn:
        return conn.execute(sa.text(
            "select host(src_addr) sa, host(dst_addr) da, src_port sp, dst_port dp, protocol pr, packets, bytes, "
            "ts_start, ts_end from ispflow.flows")).mappings().all()


def key(row: dict):
    return (row["sa"], row["da"], int(row["sp"]), int(row["dp"]), int(row["pr"]), int(row["packets"]),
            int(row["bytes"]))


def nfdump_key(row: dict):
    protocol = {"TCP": 6, "UDP": 17, "ICMP": 1}.get(row["pr"].strip(), row["pr"])
    return (row["sa"], row["da"], int(row["sp"]), int(row["dp"]), int(protocol), int(row["ipkt"]), int(row["ibyt"]))


def expected_truth(flows, with_ipv6=True):
    return sorted(
        (f.src, f.dst, f.sport, f.dport, f.protocol, f.packets, f.packets * f.ip_bytes())
        for f in flows if with_ipv6 or ":" not in f.src
    )


@pytest.mark.parametrize("version", [5, 9, 10])
def test_softflowd_stream_is_stored_as_nfdump_reads_it(version, pcap, collector, db_engine, tmp_path):
    datagrams = softflowd(pcap, version)
    assert datagrams, "softflowd sent nothing"
    reference_rows = reference(datagrams, tmp_path)
    send(datagrams, collector.ports()[0])
    rows = collector.wait_for_flows(db_engine, len(reference_rows))
    assert sorted(key(r) for r in rows) == sorted(nfdump_key(r) for r in reference_rows)
    assert sorted(key(r) for r in rows) == expected_truth(FLOWS, with_ipv6=version != 5)
    if version == 5:
        # softflowd's v5 records start 22 days *after* the header's SysUptime. nfdump reads that
        # as an uptime wrap (a flow 27 days old); we read a First ahead of SysUptime by less than
        # 2**31 ms as clock jitter (a flow a little in the future), which keeps real routers'
        # millisecond jitter from turning into 49-day-old flows. Neither is the capture's time;
        # pmacct's stream below checks times against the capture itself.
        return
    # softflowd stamps odd absolute times (SysUptime 0 at send time); ours must agree with nfdump's to the second
    ours = sorted((key(r), r["ts_start"].strftime("%Y-%m-%d %H:%M:%S")) for r in rows)
    theirs = sorted((nfdump_key(r), r["ts"]) for r in reference_rows)
    assert ours == theirs


@pytest.mark.parametrize("version", [9, 10])
def test_pmacct_nfprobe_stream_keeps_the_capture_times(version, pcap, collector, db_engine, tmp_path):
    datagrams = pmacctd(pcap, version, tmp_path)
    reference_rows = reference(datagrams, tmp_path)
    send(datagrams, collector.ports()[0])
    rows = collector.wait_for_flows(db_engine, len(FLOWS))
    assert sorted(key(r) for r in rows) == sorted(nfdump_key(r) for r in reference_rows) == expected_truth(FLOWS)
    for flow in FLOWS:
        row = next(r for r in rows if r["sa"] == flow.src)
        first = datetime.fromtimestamp(flow.start, timezone.utc)
        last = datetime.fromtimestamp(flow.start + (flow.packets - 1) * 0.01, timezone.utc)
        assert abs((row["ts_start"] - first).total_seconds()) < 0.002
        assert abs((row["ts_end"] - last).total_seconds()) < 0.002


def test_nfreplay_of_stored_flows_is_stored_as_nfdump_reads_them(pcap, collector, db_engine, tmp_path):
    datagrams = pmacctd(pcap, 9, tmp_path)
    reference(datagrams, tmp_path)  # leaves nfcapd files in tmp_path / "nfcapd"
    nfreplay(tmp_path / "nfcapd", collector.ports()[0], version=9)
    rows = collector.wait_for_flows(db_engine, len(FLOWS))
    assert sorted(key(r) for r in rows) == expected_truth(FLOWS)
