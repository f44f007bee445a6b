"""sFlow v5 datagrams the tests describe, built field by field from the sFlow v5 specification."""
from __future__ import annotations

import ipaddress
import struct

from .pcap import Flow, _packet


def _record(data_format: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(">II", data_format, len(body)) + body


def _address(text: str) -> bytes:
    address = ipaddress.ip_address(text)
    return struct.pack(">I", 1 if address.version == 4 else 2) + address.packed


def raw_header(frame: bytes, stripped: int = 4, snap: int = 128) -> bytes:
    """A raw packet header record (Ethernet) of the first ``snap`` bytes of ``frame``."""
    header = frame[:snap]
    return _record(1, struct.pack(">IIII", 1, len(frame) + stripped, stripped, len(header)) + header)


def ip_header(frame: bytes, protocol: int = 11) -> bytes:
    """A raw packet header record of a bare IP packet (header protocol 11 = IPv4, 12 = IPv6)."""
    return _record(1, struct.pack(">IIII", protocol, len(frame), 0, len(frame)) + frame)


def flow_frame(flow: Flow, index: int = 1, vlan: int | None = None) -> bytes:
    """Packet ``index`` of ``flow`` as an Ethernet frame, 802.1Q-tagged when ``vlan`` is given."""
    frame = _packet(flow, index)
    if vlan is not None:
        frame = frame[:12] + struct.pack(">HH", 0x8100, vlan) + frame[12:]
    return frame


def sampled_ipv4(length, protocol, src, dst, sport, dport, flags=0) -> bytes:
    return _record(3, struct.pack(">II4s4sIIII", length, protocol, ipaddress.ip_address(src).packed,
                                  ipaddress.ip_address(dst).packed, sport, dport, flags, 0))


def sampled_ipv6(length, protocol, src, dst, sport, dport, flags=0) -> bytes:
    return _record(4, struct.pack(">II16s16sIIII", length, protocol, ipaddress.ip_address(src).packed,
                                  ipaddress.ip_address(dst).packed, sport, dport, flags, 0))


def extended_switch(src_vlan: int, dst_vlan: int) -> bytes:
    return _record(1001, struct.pack(">IIII", src_vlan, 0, dst_vlan, 0))


def extended_router(next_hop: str, src_mask: int, dst_mask: int) -> bytes:
    return _record(1002, _address(next_hop) + struct.pack(">II", src_mask, dst_mask))


def extended_gateway(own_as: int, src_as: int, peer_as: int, path: list[int]) -> bytes:
    segments = struct.pack(">III", 1, 2, len(path)) + struct.pack(f">{len(path)}I", *path) if path else \
        struct.pack(">I", 0)
    return _record(1003, _address("192.0.2.1") + struct.pack(">III", own_as, src_as, peer_as) + segments
                   + struct.pack(">II", 0, 100))


def flow_sample(records: list[bytes], sequence: int = 1, rate: int = 1, source: int = 3, in_if: int = 3,
                out_if: int = 7, drops: int = 0, expanded: bool = False) -> bytes:
    if expanded:
        head = struct.pack(">IIIIIIIIIII", sequence, 0, source, rate, sequence * rate, drops, 0, in_if, 0, out_if,
                           len(records))
        return _record(3, head + b"".join(records))
    head = struct.pack(">IIIIIIII", sequence, source, rate, sequence * rate, drops, in_if, out_if, len(records))
    return _record(1, head + b"".join(records))


def interface_counters(if_index: int, in_octets: int, out_octets: int, speed: int = 10**9) -> bytes:
    values = (if_index, 6, speed, 1, 3, in_octets, 10, 1, 1, 0, 2, 0, out_octets, 20, 0, 0, 1, 0, 0)
    return _record(1, struct.pack(">IIQIIQIIIIIIQIIIIII", *values))


def counter_sample(records: list[bytes], sequence: int = 1, source: int = 3) -> bytes:
    return _record(2, struct.pack(">III", sequence, source, len(records)) + b"".join(records))


def datagram(samples: list[bytes], agent: str = "192.0.2.9", sequence: int = 1, sub_agent: int = 0,
             uptime_ms: int = 60_000) -> bytes:
    return (struct.pack(">I", 5) + _address(agent)
            + struct.pack(">IIII", sub_agent, sequence, uptime_ms, len(samples)) + b"".join(samples))
