"""A tiny pcap writer: Ethernet + IPv4/IPv6 + TCP/UDP packets of flows the tests describe,
for real exporters (softflowd, pmacctd) to read."""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass


@dataclass
class Flow:
    src: str
    dst: str
    sport: int
    dport: int
    protocol: int  # 6 or 17
    packets: int
    payload: int   # bytes of payload per packet
    start: float   # unix seconds of the first packet
    flags: int = 0x18  # TCP flags of the packets after the first (PSH|ACK)

    def ip_bytes(self) -> int:
        """Bytes per packet as NetFlow counts them (IP header included)."""
        ip = 20 if ipaddress.ip_address(self.src).version == 4 else 40
        return ip + (20 if self.protocol == 6 else 8) + self.payload


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _packet(flow: Flow, index: int) -> bytes:
    src, dst = ipaddress.ip_address(flow.src), ipaddress.ip_address(flow.dst)
    payload = bytes(flow.payload)
    if flow.protocol == 6:
        flags = 0x02 if index == 0 else flow.flags
        transport = struct.pack("!HHIIBBHHH", flow.sport, flow.dport, 1000 + index, 0, 5 << 4, flags, 65535, 0, 0)
    else:
        transport = struct.pack("!HHHH", flow.sport, flow.dport, 8 + len(payload), 0)
    segment = transport + payload
    if src.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), index & 0xFFFF, 0, 64, flow.protocol, 0,
                             src.packed, dst.packed)
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        ethertype = 0x0800
    else:
        header = struct.pack("!IHBB16s16s", 6 << 28, len(segment), flow.protocol, 64, src.packed, dst.packed)
        ethertype = 0x86DD
    ethernet = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", ethertype)
    return ethernet + header + segment


def write_pcap(path, flows: list[Flow], gap: float = 0.01) -> None:
    """All packets of all flows, in time order (packet i of a flow at start + i·gap)."""
    packets = []
    for flow in flows:
        for i in range(flow.packets):
            packets.append((flow.start + i * gap, _packet(flow, i)))
    packets.sort(key=lambda p: p[0])
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for when, data in packets:
            seconds = int(when)
            out.write(struct.pack("<IIII", seconds, int((when - seconds) * 1_000_000), len(data), len(data)))
            out.write(data)
