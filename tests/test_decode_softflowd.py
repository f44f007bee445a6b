"""Packets from a third-party exporter: Debian's softflowd turns a pcap we write into v5, v9 and IPFIX."""
import socket
import subprocess
from collections import defaultdict

import pytest

from tests import synthetic
from tests.collector_helpers import check
from ispflow.collector.decoder import FlowDecoder

T0 = 1_767_225_600.0


def traffic(ipv6: bool) -> list[dict]:
    """A TCP connection (both directions), a DNS query, two pings and, for v9/IPFIX, IPv6 UDP."""
    packets = []
    for i in range(4):
        packets.append(dict(time=T0 + i * 0.1, src="100.64.0.10", dst="192.0.2.80", protocol=6, src_port=40000,
                            dst_port=443, tcp_flags=0x02 if i == 0 else 0x10, size=60 + 40 * i))
        packets.append(dict(time=T0 + i * 0.1 + 0.05, src="192.0.2.80", dst="100.64.0.10", protocol=6,
                            src_port=443, dst_port=40000, tcp_flags=0x12 if i == 0 else 0x18, size=1500 - i))
    packets.append(dict(time=T0 + 1, src="100.64.0.11", dst="198.51.100.53", protocol=17, src_port=5353,
                        dst_port=53, size=71))
    packets += [dict(time=T0 + 1.5 + i, src="100.64.0.12", dst="198.51.100.1", protocol=1, size=84) for i in range(2)]
    if ipv6:
        packets += [dict(time=T0 + 2 + i, src="2001:db8:100::7", dst="2001:db8:ffff::1", protocol=17,
                         src_port=1000, dst_port=2000, size=200 + i) for i in range(3)]
    return packets


def expected_flows(packets) -> set:
    totals = defaultdict(lambda: [0, 0])
    for p in packets:
        ports = (0, 8 << 8) if p["protocol"] == 1 else (p["src_port"], p["dst_port"])  # ICMP echo request
        key = (p["src"], p["dst"], *ports, p["protocol"])
        totals[key][0] += 1
        totals[key][1] += p["size"]
    return {key + tuple(counts) for key, counts in totals.items()}


def softflowd_export(tmp_path, version: int, packets) -> list[bytes]:
    pcap = tmp_path / "traffic.pcap"
    synthetic.write_pcap(pcap, packets)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        subprocess.run(["softflowd", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", str(version), "-d"],
                       check=True, capture_output=True, timeout=10)
        sock.settimeout(0.3)
        datagrams = []
        while True:
            try:
                datagrams.append(sock.recv(65535))
            except TimeoutError:
                return datagrams


@pytest.mark.parametrize("version", [5, 9, 10])
def test_softflowd_flows_match_the_pcap(tmp_path, version):
    packets = traffic(ipv6=version != 5)
    datagrams = softflowd_export(tmp_path, version, packets)
    decoder = FlowDecoder()
    infos = [decoder.feed(d, "127.0.0.1", T0) for d in datagrams]
    flows, _ = decoder.drain()
    check(flows)
    got = {(f["src"], f["dst"], f["src_port"], f["dst_port"], f["protocol"], f["packets"], f["bytes"])
           for f in synthetic.flow_dicts(flows)}
    assert {i.version for i in infos} == {version}
    assert got == expected_flows(packets)
    assert sum(i.records for i in infos) == len(flows) == len(got)
