"""Our own NetFlow v5 / v9 / IPFIX exporter: valid packets built from flow dicts, for tests and benches.

Flows are plain dicts (``generate_flows`` makes realistic ones):

    src, dst          address text, IPv4 or IPv6
    src_port, dst_port, protocol, tcp_flags, packets, bytes, in_if, out_if, src_as, dst_as
    start, end        unix seconds (floats; keep them to whole milliseconds for exact round trips)
    optional: icmp_type_code, sampling_interval, sampler_id, sampling_packet_interval,
              sampling_packet_space, system_init_ms, and ("vlen", element) -> bytes for a
              variable-length field's value

NAT events are dicts too: event (RFC 8158 natEvent code), time (unix seconds, sent as
observationTimeMilliseconds), private, private_port, public, public_port, dst, dst_port,
protocol, port_block_start, port_block_end.

NetFlow v5: ``v5_packets(flows, export_time=…)``. NetFlow v9 and IPFIX: an ``Exporter`` keeps the
sequence number, domain and boot time, and builds sets and packets from ``TemplateSpec``s::

    exporter = Exporter(version=10, domain=7, boot_time=t0)
    packets = exporter.packets(flows, IPFIX_IPV4, export_time=t1)        # template + data
    packet = exporter.packet([exporter.template_set(IPFIX_SAMPLING),
                              exporter.data_set(IPFIX_SAMPLING, [{"sampling_packet_interval": 1,
                                                                 "sampling_packet_space": 99}], t1)],
                             export_time=t1)

(``packet``'s third argument, the number of data records, advances an IPFIX sequence number.)
A template's fields are ``(element, length)`` or ``(element, length, enterprise)``; any element
and any length 1–8 for integers is encoded (reduced-size encoding), unknown elements as zeros,
length 65535 (IPFIX) as a variable-length field (1-byte or 255 + 2-byte length prefix).
Ready-made templates: V9_IPV4, V9_IPV6, V9_NAT, V9_SAMPLER_OPTIONS, V9_SAMPLING_OPTIONS,
IPFIX_IPV4, IPFIX_IPV6, IPFIX_NAT, IPFIX_NAT6, IPFIX_SAMPLING, IPFIX_INIT_TIME, MIKROTIK_IPFIX,
NSEL_V9 (flow records carrying their translation: "public"/"public_port" is the post-NAT
source, "post_dst"/"post_dst_port" the post-NAT destination).

Also: ``write_pcap`` (traffic for exporters that read pcaps, such as softflowd or pmacctd) and
``flow_dicts`` / ``nat_dicts`` (decoded batches back as dicts, for comparisons in tests).
"""
from __future__ import annotations

import ipaddress
import math
import random
import socket
import struct
from dataclasses import dataclass

from ispflow.collector import fields as ie

NTP_UNIX_OFFSET = 2_208_988_800

_KEYS = {
    ie.OCTET_DELTA_COUNT: "bytes", ie.OCTET_TOTAL_COUNT: "bytes", ie.POST_OCTET_DELTA_COUNT: "bytes",
    ie.PACKET_DELTA_COUNT: "packets", ie.PACKET_TOTAL_COUNT: "packets", ie.POST_PACKET_DELTA_COUNT: "packets",
    ie.PROTOCOL: "protocol", ie.TCP_CONTROL_BITS: "tcp_flags",
    ie.INGRESS_INTERFACE: "in_if", ie.EGRESS_INTERFACE: "out_if",
    ie.BGP_SOURCE_AS: "src_as", ie.BGP_DESTINATION_AS: "dst_as",
    ie.DESTINATION_PORT: "dst_port",
    ie.ICMP_TYPE_CODE_IPV4: "icmp_type_code", ie.ICMP_TYPE_CODE_IPV6: "icmp_type_code",
    ie.SAMPLING_INTERVAL: "sampling_interval", ie.SAMPLING_ALGORITHM: "sampling_algorithm",
    ie.SAMPLER_ID: "sampler_id", ie.SELECTOR_ID: "sampler_id", ie.SAMPLER_MODE: "sampler_mode",
    ie.SAMPLER_RANDOM_INTERVAL: "sampler_random_interval",
    ie.SAMPLING_PACKET_INTERVAL: "sampling_packet_interval", ie.SAMPLING_PACKET_SPACE: "sampling_packet_space",
    ie.NAT_EVENT: "event", ie.POST_NAPT_SOURCE_PORT: "public_port", ie.POST_NAPT_DESTINATION_PORT: "post_dst_port",
    ie.NSEL_XLATE_SOURCE_PORT: "public_port", ie.NSEL_XLATE_DESTINATION_PORT: "post_dst_port",
    ie.PORT_RANGE_START: "port_block_start", ie.PORT_RANGE_END: "port_block_end",
    149: "domain",
}


@dataclass(frozen=True)
class TemplateSpec:
    """A (options) template: id, fields, and for options templates the number of scope fields."""

    template_id: int
    fields: tuple
    scope: int = 0

    def normalised(self):
        return tuple(f if len(f) == 3 else (f[0], f[1], 0) for f in self.fields)


_IPV4_CORE = ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (10, 4), (14, 4), (16, 4), (17, 4))
_IPV6_CORE = ((27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (6, 1), (10, 4), (14, 4), (16, 4), (17, 4))

# NetFlow v9 as routers send it: counters, uptime-relative times.
V9_IPV4 = TemplateSpec(256, _IPV4_CORE + ((1, 8), (2, 8), (22, 4), (21, 4)))
V9_IPV6 = TemplateSpec(257, _IPV6_CORE + ((1, 8), (2, 8), (22, 4), (21, 4)))
V9_SAMPLER_OPTIONS = TemplateSpec(258, ((1, 4), (48, 2), (49, 1), (50, 4)), scope=1)  # scope: System
V9_SAMPLING_OPTIONS = TemplateSpec(259, ((1, 4), (34, 4), (35, 1)), scope=1)
V9_NAT = TemplateSpec(260, ((8, 4), (7, 2), (225, 4), (227, 2), (12, 4), (11, 2), (4, 1), (230, 1), (323, 8)))

# IPFIX: absolute millisecond times.
IPFIX_IPV4 = TemplateSpec(300, _IPV4_CORE + ((1, 8), (2, 8), (152, 8), (153, 8)))
IPFIX_IPV6 = TemplateSpec(301, _IPV6_CORE + ((1, 8), (2, 8), (152, 8), (153, 8)))
IPFIX_SAMPLING = TemplateSpec(302, ((149, 4), (305, 4), (306, 4)), scope=1)
IPFIX_INIT_TIME = TemplateSpec(303, ((149, 4), (160, 8)), scope=1)
IPFIX_NAT = TemplateSpec(304, ((323, 8), (230, 1), (4, 1), (8, 4), (7, 2), (225, 4), (227, 2),
                               (361, 2), (362, 2), (12, 4), (11, 2)))
# MikroTik RouterOS 6.39's IPFIX flow template, field for field: ipVersion, flowStart/EndSysUpTime,
# packet and octet deltas, ports, interfaces, protocol, TCP flags, addresses, next hop, and the
# post-NAT source and destination addresses (no post-NAPT ports in that release).
MIKROTIK_IPFIX = TemplateSpec(258, ((60, 1), (22, 4), (21, 4), (2, 4), (1, 4), (7, 2), (11, 2), (10, 4), (14, 4),
                                    (4, 1), (6, 1), (8, 4), (12, 4), (15, 4), (225, 4), (226, 4)))
# A Cisco ASA NSEL-like NetFlow v9 flow template with the older translated-address elements 40001-40004.
NSEL_V9 = TemplateSpec(263, ((8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (40001, 4), (40002, 4), (40003, 2),
                             (40004, 2), (1, 4), (2, 4), (22, 4), (21, 4)))
IPFIX_NAT6 = TemplateSpec(305, ((323, 8), (230, 1), (4, 1), (27, 16), (7, 2), (281, 16), (227, 2)))


def _address(text: str, length: int) -> bytes:
    if not text:
        return bytes(length)
    packed = socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    return packed if len(packed) == length else bytes(length)


def _ntp(seconds: float, unit: int) -> int:
    """NTP timestamp of ``seconds`` (unix) exact to ``unit`` parts of a second, rounded up so decoders floor back."""
    whole = math.floor(seconds)
    parts = round((seconds - whole) * unit)
    fraction = -(-parts * 2**32 // unit)
    return ((whole + NTP_UNIX_OFFSET) << 32) | min(fraction, 2**32 - 1)


class _Context:
    def __init__(self, export_time: float, boot_time: float):
        self.export_time = export_time
        self.boot_time = boot_time


def _value(record: dict, element: int, length: int, context: _Context) -> bytes:
    """One field of a record, encoded big-endian at the template's length."""
    if element in ie.ADDRESS_LENGTHS:
        key = {8: ("src", "private"), 27: ("src", "private"), 12: ("dst",), 28: ("dst",),
               225: ("public",), 281: ("public",), 226: ("post_dst",), 282: ("post_dst",),
               ie.NSEL_XLATE_SOURCE_IPV4: ("public",), ie.NSEL_XLATE_DESTINATION_IPV4: ("post_dst",)}[element]
        text = next((record[k] for k in key if k in record), "")
        wanted = ie.ADDRESS_LENGTHS[element]
        if text and (":" in text) != (wanted == 16):
            text = ""
        return _address(text, length)
    number = _number(record, element, context)
    return (number & ((1 << (8 * length)) - 1)).to_bytes(length, "big") if length <= 8 else bytes(length)


def _number(record: dict, element: int, context: _Context) -> int:
    start, end = record.get("start", context.export_time), record.get("end", context.export_time)
    if element == ie.SOURCE_PORT:
        return record.get("src_port", record.get("private_port", 0))
    if element in _KEYS:
        return int(record.get(_KEYS[element], 0) or 0)
    uptime = {ie.FLOW_START_SYS_UPTIME: start, ie.FLOW_END_SYS_UPTIME: end}
    if element in uptime:
        return round((uptime[element] - context.boot_time) * 1000)
    if element in (ie.FLOW_START_SECONDS, ie.FLOW_END_SECONDS):
        return int(start if element == ie.FLOW_START_SECONDS else end)
    if element in (ie.FLOW_START_MILLISECONDS, ie.FLOW_END_MILLISECONDS):
        return round((start if element == ie.FLOW_START_MILLISECONDS else end) * 1000)
    if element in (ie.FLOW_START_MICROSECONDS, ie.FLOW_END_MICROSECONDS):
        return _ntp(start if element == ie.FLOW_START_MICROSECONDS else end, 1_000_000)
    if element in (ie.FLOW_START_NANOSECONDS, ie.FLOW_END_NANOSECONDS):
        return _ntp(start if element == ie.FLOW_START_NANOSECONDS else end, 1_000_000_000)
    if element in (ie.FLOW_START_DELTA_MICROSECONDS, ie.FLOW_END_DELTA_MICROSECONDS):
        moment = start if element == ie.FLOW_START_DELTA_MICROSECONDS else end
        return round((int(context.export_time) - moment) * 1_000_000)
    if element == ie.SYSTEM_INIT_TIME_MILLISECONDS:
        return int(record.get("system_init_ms", round(context.boot_time * 1000)))
    if element == ie.OBSERVATION_TIME_MILLISECONDS:
        return round(record.get("time", start) * 1000)
    return 0


def _variable(value: bytes) -> bytes:
    if len(value) < 255:
        return bytes([len(value)]) + value
    return b"\xff" + struct.pack(">H", len(value)) + value


def encode_record(record: dict, spec, context: _Context) -> bytes:
    """One data record for a normalised template spec."""
    out = bytearray()
    for element, length, enterprise in spec:
        if length == ie.VARIABLE_LENGTH:
            out += _variable(record.get(("vlen", element), b"ispflow"))
        elif enterprise:
            out += bytes(length)
        else:
            out += _value(record, element, length, context)
    return bytes(out)


def _encoder(spec, context: _Context):
    """A function encoding one record for ``spec``: one struct.pack call when no field is variable-length."""
    if any(length == ie.VARIABLE_LENGTH for _, length, _ in spec):
        return lambda record: encode_record(record, spec, context)
    formats, getters = [], []
    for element, length, enterprise in spec:
        mask = (1 << (8 * length)) - 1
        if enterprise or length > 8 or element in ie.ADDRESS_LENGTHS:
            formats.append(f"{length}s")
            getters.append((lambda r: b"") if enterprise else
                           (lambda r, e=element, n=length: _value(r, e, n, context)))
            continue
        formats.append({1: "B", 2: "H", 4: "I", 8: "Q"}.get(length, f"{length}s"))
        if element in _KEYS:
            get = (lambda r, k=_KEYS[element], m=mask: int(r.get(k, 0) or 0) & m)
        else:
            get = (lambda r, e=element, m=mask: _number(r, e, context) & m)
        if length not in (1, 2, 4, 8):
            get = (lambda r, g=get, n=length: g(r).to_bytes(n, "big"))
        getters.append(get)
    packer = struct.Struct(">" + "".join(formats))
    return lambda record: packer.pack(*[get(record) for get in getters])


def _padded(set_id: int, body: bytes, padding: bool) -> bytes:
    if padding:
        body += bytes(-(len(body) + 4) % 4)
    return struct.pack(">HH", set_id, len(body) + 4) + body


class Exporter:
    """A NetFlow v9 (``version=9``) or IPFIX (``version=10``) exporter with its sequence state.

    ``domain`` is the v9 source id or the IPFIX observation domain; ``boot_time`` (unix seconds)
    is when the exporter started, for sysUpTime-relative fields. ``sequence`` is the next
    sequence number: v9 adds one per packet, IPFIX the number of data records sent.
    """

    def __init__(self, version: int = 9, domain: int = 0, sequence: int = 0, boot_time: float | None = None):
        if version not in (9, 10):
            raise ValueError("Exporter builds NetFlow v9 (9) or IPFIX (10) packets")
        self.version = version
        self.domain = domain
        self.sequence = sequence
        self.boot_time = boot_time

    def template_set(self, *templates: TemplateSpec) -> bytes:
        """One template set holding data templates, or one options template set holding options templates."""
        options = bool(templates[0].scope)
        body = bytearray()
        for template in templates:
            spec = template.normalised()
            if self.version == 9:
                if options:
                    scope, rest = spec[:template.scope], spec[template.scope:]
                    body += struct.pack(">HHH", template.template_id, 4 * len(scope), 4 * len(rest))
                else:
                    body += struct.pack(">HH", template.template_id, len(spec))
                body += b"".join(struct.pack(">HH", f, n) for f, n, _ in spec)
            else:
                body += struct.pack(">HH", template.template_id, len(spec))
                if options:
                    body += struct.pack(">H", template.scope)
                for f, n, enterprise in spec:
                    if enterprise:
                        body += struct.pack(">HHI", f | 0x8000, n, enterprise)
                    else:
                        body += struct.pack(">HH", f, n)
        set_id = (1 if options else 0) if self.version == 9 else (3 if options else 2)
        return _padded(set_id, bytes(body), padding=self.version == 9)

    def withdrawal_set(self, template_id: int | None = None, options: bool = False) -> bytes:
        """IPFIX template withdrawal; ``None`` withdraws every (options) template."""
        set_id = 3 if options else 2
        return _padded(set_id, struct.pack(">HH", set_id if template_id is None else template_id, 0), False)

    def data_set(self, template: TemplateSpec, records: list[dict], export_time: float,
                 padding: bool = True) -> bytes:
        """One data set of ``records`` encoded with ``template`` (padded to 4 bytes unless told not to)."""
        encode = _encoder(template.normalised(), _Context(export_time, self._boot(export_time)))
        return _padded(template.template_id, b"".join(encode(r) for r in records), padding)

    def packet(self, sets: list[bytes], export_time: float, data_records: int | None = None) -> bytes:
        """A packet of ``sets``; advances the sequence by one (v9) or by ``data_records`` (IPFIX)."""
        body = b"".join(sets)
        if self.version == 9:
            uptime = round((export_time - self._boot(export_time)) * 1000) & 0xFFFFFFFF
            header = struct.pack(">HHIIII", 9, data_records or 0, uptime, int(export_time),
                                 self.sequence, self.domain)
            self.sequence = (self.sequence + 1) & 0xFFFFFFFF
        else:
            header = struct.pack(">HHIII", 10, 16 + len(body), int(export_time), self.sequence, self.domain)
            self.sequence = (self.sequence + (data_records or 0)) & 0xFFFFFFFF
        return header + body

    def packets(self, flows: list[dict], template: TemplateSpec, export_time: float,
                per_packet: int | None = None, with_template: str = "first") -> list[bytes]:
        """Packets carrying ``flows``; the template goes in the first packet, ``"every"`` one or ``"never"``."""
        spec = template.normalised()
        if per_packet is None:
            size = sum(3 if n == ie.VARIABLE_LENGTH else n for _, n, _ in spec)
            per_packet = max(1, 1300 // max(size, 1))
        encode = _encoder(spec, _Context(export_time, self._boot(export_time)))
        out = []
        for i in range(0, len(flows), per_packet):
            chunk = flows[i:i + per_packet]
            sets = []
            if with_template == "every" or (with_template == "first" and i == 0):
                sets.append(self.template_set(template))
            body = b"".join(encode(r) for r in chunk)
            sets.append(_padded(template.template_id, body, padding=True))
            out.append(self.packet(sets, export_time, len(chunk)))
        return out

    def _boot(self, export_time: float) -> float:
        return export_time - 3600.0 if self.boot_time is None else self.boot_time


_V5_RECORD = struct.Struct(">4s4s4sHHIIIIHHBBBBHHBBH")


def v5_packets(flows: list[dict], export_time: float, boot_time: float | None = None, sequence: int = 0,
               engine_type: int = 0, engine_id: int = 0, sampling_interval: int = 0, sampling_mode: int = 0,
               per_packet: int = 30) -> list[bytes]:
    """NetFlow v5 packets (IPv4 flows only, 30 per packet); ``sequence`` is the first flow's number."""
    boot = export_time - 3600.0 if boot_time is None else boot_time
    uptime = round((export_time - boot) * 1000) & 0xFFFFFFFF
    secs = int(export_time)
    nsecs = round((export_time - secs) * 1e9)
    sampling = ((sampling_mode & 0x3) << 14) | (sampling_interval & 0x3FFF)
    out = []
    for i in range(0, len(flows), per_packet):
        chunk = flows[i:i + per_packet]
        header = struct.pack(">HHIIIIBBH", 5, len(chunk), uptime, secs, nsecs, (sequence + i) & 0xFFFFFFFF,
                             engine_type, engine_id, sampling)
        records = [
            _V5_RECORD.pack(
                _address(f["src"], 4), _address(f["dst"], 4), bytes(4), f.get("in_if", 0) & 0xFFFF,
                f.get("out_if", 0) & 0xFFFF, f["packets"] & 0xFFFFFFFF, f["bytes"] & 0xFFFFFFFF,
                round((f["start"] - boot) * 1000) & 0xFFFFFFFF, round((f["end"] - boot) * 1000) & 0xFFFFFFFF,
                f.get("src_port", 0), f.get("dst_port", 0), 0, f.get("tcp_flags", 0) & 0xFF, f["protocol"], 0,
                f.get("src_as", 0) & 0xFFFF, f.get("dst_as", 0) & 0xFFFF, 24, 24, 0)
            for f in chunk
        ]
        out.append(header + b"".join(records))
    return out


_SERVICES = ((443, 6, 40), (80, 6, 10), (53, 17, 12), (443, 17, 8), (123, 17, 2), (993, 6, 2),
             (22, 6, 2), (25, 6, 1), (3478, 17, 3), (5222, 6, 2), (8080, 6, 2), (0, 1, 3), (0, 58, 1))


def generate_flows(n: int, seed: int = 0, subscriber_prefix: str = "100.64.0.0/16",
                   subscriber_prefix6: str = "2001:db8:100::/48", ipv6_share: float = 0.0,
                   start: float = 1_767_225_600.0, duration: float = 300.0, peers: int = 5000) -> list[dict]:
    """``n`` realistic flows: subscribers in the given prefixes talking to ``peers`` remote hosts.

    Half the flows leave a subscriber (``in_if`` 1 → ``out_if`` 2), half come back; common
    services (HTTPS, DNS, QUIC, NTP…) with ephemeral client ports, some ICMP; a few TCP flows
    are failed connection attempts (SYN only). Times are whole milliseconds in
    [start, start + duration + 60).
    """
    rng = random.Random(seed)
    net4 = ipaddress.ip_network(subscriber_prefix)
    net6 = ipaddress.ip_network(subscriber_prefix6)
    remote4 = [str(ipaddress.IPv4Address(rng.randrange(0x01000000, 0xDF000000))) for _ in range(peers)]
    remote6 = [str(ipaddress.IPv6Address((0x2A00 << 112) | rng.getrandbits(100))) for _ in range(peers)]
    services = [s[:2] for s in _SERVICES]
    weights = [s[2] for s in _SERVICES]
    chosen = rng.choices(services, weights, k=n)
    flows = []
    for i in range(n):
        port, protocol = chosen[i]
        v6 = rng.random() < ipv6_share
        if v6:
            subscriber = str(net6[rng.randrange(1, min(net6.num_addresses, 2**32))])
            peer = remote6[rng.randrange(peers)]
            protocol = 58 if protocol == 1 else protocol
        else:
            subscriber = str(net4[rng.randrange(1, net4.num_addresses - 1)])
            peer = remote4[rng.randrange(peers)]
            protocol = 1 if protocol == 58 else protocol
        packets = max(1, int(rng.paretovariate(1.2)))
        size = rng.randint(40, 1500)
        begin = round(start + rng.random() * duration, 3)
        flow = {
            "start": begin, "end": round(begin + rng.random() * min(60.0, packets / 10), 3),
            "protocol": protocol, "packets": packets, "bytes": packets * size,
            "src_as": 0, "dst_as": rng.choice((0, 2906, 15169, 13335, 32934)),
            "tcp_flags": 0,
        }
        if protocol in (1, 58):
            client, server = 0, 0
            flow["icmp_type_code"] = rng.choice((0x0800, 0x0000, 0x0303)) if protocol == 1 else 0x8000
        else:
            client, server = rng.randint(1024, 65535), port
        if protocol == 6:
            flow["tcp_flags"] = 0x02 if rng.random() < 0.05 else 0x1B
        if rng.random() < 0.5:
            flow.update(src=subscriber, dst=peer, src_port=client, dst_port=server, in_if=1, out_if=2)
        else:
            flow.update(src=peer, dst=subscriber, src_port=server, dst_port=client, in_if=2, out_if=1)
        if protocol in (1, 58):
            flow["dst_port"] = flow["icmp_type_code"]
        flows.append(flow)
    return flows


def _text(family: int, address) -> str:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, bytes(address[:4]))
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, bytes(address))
    return ""


def flow_dicts(batch) -> list[dict]:
    """A decoded ``FlowBatch`` as flow dicts shaped like ``generate_flows``' (for tests; slow)."""
    return [{
        "exporter": batch.exporters[batch.exporter[i]],
        "src": _text(batch.family[i], batch.src_addr[i]), "dst": _text(batch.family[i], batch.dst_addr[i]),
        "src_port": int(batch.src_port[i]), "dst_port": int(batch.dst_port[i]),
        "protocol": int(batch.protocol[i]), "tcp_flags": int(batch.tcp_flags[i]),
        "packets": int(batch.packets[i]), "bytes": int(batch.bytes[i]),
        "in_if": int(batch.in_if[i]), "out_if": int(batch.out_if[i]),
        "src_as": int(batch.src_as[i]), "dst_as": int(batch.dst_as[i]),
        "start": int(batch.ts_start[i]) / 1e6, "end": int(batch.ts_end[i]) / 1e6,
        "sampling_rate": int(batch.sampling_rate[i]),
    } for i in range(len(batch))]


def nat_dicts(batch) -> list[dict]:
    """A decoded ``NatBatch`` as NAT event dicts shaped like the ones this module encodes."""
    return [{
        "exporter": batch.exporters[batch.exporter[i]],
        "event": int(batch.event[i]), "time": int(batch.ts[i]) / 1e6, "protocol": int(batch.protocol[i]),
        "private": _text(batch.family[i], batch.private_addr[i]), "private_port": int(batch.private_port[i]),
        "public": _text(batch.public_family[i], batch.public_addr[i]), "public_port": int(batch.public_port[i]),
        "port_block_start": int(batch.port_block_start[i]), "port_block_end": int(batch.port_block_end[i]),
        "dst": _text(batch.dst_family[i], batch.dst_addr[i]), "dst_port": int(batch.dst_port[i]),
        "ts_end": int(batch.ts_end[i]),
    } for i in range(len(batch))]


def write_pcap(path, packets: list[dict]) -> None:
    """A pcap file (Ethernet link type) of IPv4/IPv6 TCP, UDP or ICMP packets, for exporters that read pcaps.

    Each packet dict: time (unix seconds), src, dst, protocol (6, 17, 1 or 58), src_port,
    dst_port, tcp_flags (TCP), size (bytes of the IP packet, at least its headers; padded with
    zeros). softflowd and pmacctd count ``size`` as the flow's bytes.
    """
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for p in packets:
        v6 = ":" in p["src"]
        protocol = p["protocol"]
        if protocol == 6:
            transport = struct.pack(">HHIIBBHHH", p.get("src_port", 0), p.get("dst_port", 0), 1, 0,
                                    5 << 4, p.get("tcp_flags", 0x10), 65535, 0, 0)
        elif protocol == 17:
            transport = struct.pack(">HHHH", p.get("src_port", 0), p.get("dst_port", 0), 0, 0)
        else:
            transport = struct.pack(">BBHI", p.get("icmp_type", 8), p.get("icmp_code", 0), 0, 0)
        header_length = 40 if v6 else 20
        size = max(p.get("size", 0), header_length + len(transport))
        payload = transport + bytes(size - header_length - len(transport))
        if protocol == 17:
            payload = payload[:4] + struct.pack(">H", len(payload)) + payload[6:]
        if v6:
            ip = struct.pack(">IHBB16s16s", 6 << 28, len(payload), protocol, 64,
                             _address(p["src"], 16), _address(p["dst"], 16))
        else:
            ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, size, 0, 0, 64, protocol, 0,
                             _address(p["src"], 4), _address(p["dst"], 4))
            checksum = sum(struct.unpack(">10H", ip))
            checksum = (checksum & 0xFFFF) + (checksum >> 16)
            checksum = (checksum & 0xFFFF) + (checksum >> 16)
            ip = ip[:10] + struct.pack(">H", ~checksum & 0xFFFF) + ip[12:]
        frame = bytes(6) + b"\x02\x00\x00\x00\x00\x01" + struct.pack(">H", 0x86DD if v6 else 0x0800) + ip + payload
        seconds = int(p["time"])
        micros = round((p["time"] - seconds) * 1e6)
        out.append(struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame)
    with open(path, "wb") as handle:
        handle.write(b"".join(out))
