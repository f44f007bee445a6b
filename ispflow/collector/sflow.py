"""sFlow version 5 (sflow.org, "sFlow Version 5", July 2004): flow and counter samples.

A switch or router exporting sFlow sends *samples*, not flows: one in N packets with its first
bytes (the raw packet header) or its parsed addresses, and now and then its interface counters.
Each flow sample becomes one row of the ``FlowBatch`` the NetFlow decoders produce: one packet,
the bytes of that packet (the IP length from its header, as NetFlow counts bytes, or the frame
length less what the agent stripped when the header is not IP), and the sample's sampling rate,
so that enrichment scales it as it scales sampled NetFlow. Its time is the time we received it:
sFlow carries only the agent's uptime, no clock.

Read from flow samples (standard and expanded forms): the raw packet header (Ethernet with
802.1Q / QinQ tags, bare IPv4 or IPv6; TCP and UDP ports, TCP flags; ports are 0 in IP
fragments other than the first and for other protocols), the sampled IPv4/IPv6 records, the
input and output interfaces, extended switch data (VLANs, kept per exporter in ``vlans``) and
extended router and gateway data (the gateway's source and destination AS go to the flow).
Counter samples' generic interface counters are kept, the latest per (exporter, interface), in
``interfaces`` for the metrics endpoint; they are not flows.

Loss is counted from flow-sample sequence numbers per (exporter, agent, sub-agent, source): a
gap is that many samples lost on the way; a backward jump is a restarted agent and counts none.
Malformed datagrams raise ``DecodeError``; samples read before the bad one are kept.

sFlow datagrams start with a 32-bit version, so their first two bytes are zero, a value no
NetFlow or IPFIX header has: the collector tells them apart on any socket (``is_sflow``), so
sFlow agents may send to the NetFlow port or to sFlow's own 6343 added as a listen address.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, fields as dataclass_fields

import numpy as np

from .batches import ABSENT, FlowBatch
from .templates import DecodeError

SFLOW_VERSION_CODE = 1005
"""How an sFlow v5 exporter is recorded in ``exporters.netflow_version`` (apart from NetFlow v5)."""

_U32 = struct.Struct(">I")
_DATAGRAM = struct.Struct(">III")        # sub-agent id, sequence number, uptime
_SAMPLE_HEADER = struct.Struct(">II")    # data format, length
_FLOW_SAMPLE = struct.Struct(">IIIIIIII")
_EXPANDED_FLOW_SAMPLE = struct.Struct(">IIIIIIIIIII")
_SAMPLED_HEADER = struct.Struct(">IIII")
_SAMPLED_IPV4 = struct.Struct(">II4s4sIIII")
_SAMPLED_IPV6 = struct.Struct(">II16s16sIIII")
_SWITCH = struct.Struct(">IIII")
_INTERFACE_COUNTERS = struct.Struct(">IIQIIQIIIIIIQIIIIII")

FLOW_SAMPLE, COUNTER_SAMPLE, EXPANDED_FLOW_SAMPLE, EXPANDED_COUNTER_SAMPLE = 1, 2, 3, 4
RAW_HEADER, SAMPLED_IPV4, SAMPLED_IPV6 = 1, 3, 4
EXTENDED_SWITCH, EXTENDED_ROUTER, EXTENDED_GATEWAY = 1001, 1002, 1003
GENERIC_INTERFACE_COUNTERS = 1
_ETHERNET, _IPV4, _IPV6 = 1, 11, 12
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
_IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options: skipped to reach TCP/UDP
_IPV6_FRAGMENT = 44
_REORDER_WINDOW = 1000
_MAX_RATE = 2**31 - 1  # the batches' sampling_rate column is int32

INTERFACE_COUNTER_NAMES = (
    "if_index", "if_type", "if_speed", "if_direction", "if_status", "in_octets", "in_unicast", "in_multicast",
    "in_broadcast", "in_discards", "in_errors", "in_unknown_protocols", "out_octets", "out_unicast",
    "out_multicast", "out_broadcast", "out_discards", "out_errors", "promiscuous")


def is_sflow(packet: bytes) -> bool:
    """True for an sFlow datagram (NetFlow/IPFIX headers start with a non-zero 16-bit version)."""
    return packet[:2] == b"\0\0"


@dataclass
class SflowInfo:
    """What one datagram held, in the shape the collector counts NetFlow packets by."""

    version: int
    exporter: str
    domain: int             # sub-agent id
    sequence: int
    export_time: float      # 0: sFlow has no wall clock, so no clock skew can be read from it
    records: int            # flow samples queued
    lost: int               # flow samples lost on the way (sequence gaps)
    templates: int
    pending: int
    sampling_rate: int | None
    counter_samples: int = 0


class _Sample:
    __slots__ = ("family", "src", "dst", "sport", "dport", "protocol", "flags", "length", "src_as", "dst_as")

    def __init__(self):
        self.family = 0
        self.src = self.dst = b""
        self.sport = self.dport = 0
        self.protocol = 0
        self.flags = ABSENT
        self.length = 0
        self.src_as = self.dst_as = ABSENT


class SflowDecoder:
    """Decodes sFlow v5 datagrams from any number of agents into ``FlowBatch`` columns."""

    def __init__(self):
        self._rows: list[tuple] = []
        self._exporters: list[str] = []
        self._exporter_index: dict[str, int] = {}
        self._sequences: dict[tuple, int] = {}
        self.interfaces: dict[tuple[str, int], dict[str, int]] = {}
        self.vlans: dict[str, set[int]] = {}
        self.stats = {"counter_samples": 0, "skipped_samples": 0, "agent_dropped_samples": 0}
        self._drops: dict[tuple, int] = {}

    def feed(self, packet: bytes, exporter: str, received_at: float) -> SflowInfo:
        """Read one datagram; queue its flow samples; raise DecodeError only."""
        info = SflowInfo(SFLOW_VERSION_CODE, exporter, 0, 0, 0.0, 0, 0, 0, 0, None)
        try:
            self._datagram(packet, exporter, int(received_at * 1_000_000), info)
        except DecodeError as error:
            raise self._error(str(error), info) from None
        except (struct.error, IndexError, ValueError, OverflowError) as error:
            raise self._error(f"sFlow datagram could not be parsed ({error})", info) from None
        return info

    def drain(self) -> FlowBatch:
        """Everything queued since the last drain, as one batch."""
        rows, self._rows = self._rows, []
        if not rows:
            return FlowBatch(exporters=list(self._exporters))
        n = len(rows)
        exporter, ts, family, src, dst, sport, dport, protocol, flags, length, in_if, out_if, rate, src_as, dst_as = \
            zip(*rows)
        src_addr = np.zeros((n, 16), dtype=np.uint8)
        dst_addr = np.zeros((n, 16), dtype=np.uint8)
        for i in range(n):
            src_addr[i, :len(src[i])] = np.frombuffer(src[i], dtype=np.uint8)
            dst_addr[i, :len(dst[i])] = np.frombuffer(dst[i], dtype=np.uint8)
        ts = np.array(ts, dtype=np.int64)
        return _with_absent_columns(
            n, exporter=np.array(exporter, dtype=np.int32), ts_start=ts, ts_end=ts.copy(),
            family=np.array(family, dtype=np.uint8), src_addr=src_addr, dst_addr=dst_addr,
            src_port=np.array(sport, dtype=np.int32), dst_port=np.array(dport, dtype=np.int32),
            protocol=np.array(protocol, dtype=np.int16), tcp_flags=np.array(flags, dtype=np.int16),
            bytes=np.array(length, dtype=np.int64), packets=np.ones(n, dtype=np.int64),
            in_if=np.array(in_if, dtype=np.int64), out_if=np.array(out_if, dtype=np.int64),
            sampling_rate=np.array(rate, dtype=np.int32), src_as=np.array(src_as, dtype=np.int64),
            dst_as=np.array(dst_as, dtype=np.int64), exporters=list(self._exporters))

    # -- datagram and samples -------------------------------------------------------------------

    def _datagram(self, packet: bytes, exporter: str, received_us: int, info: SflowInfo) -> None:
        if len(packet) < 28:
            raise DecodeError(f"sFlow datagram of {len(packet)} bytes is shorter than its header")
        (version,) = _U32.unpack_from(packet, 0)
        if version != 5:
            raise DecodeError(f"unknown sFlow version {version}")
        agent, pos = _address(packet, 4)
        info.domain, info.sequence, _ = _DATAGRAM.unpack_from(packet, pos)
        (count,) = _U32.unpack_from(packet, pos + 12)
        pos += 16
        index = self._exporter_index.get(exporter)
        if index is None:
            index = self._exporter_index[exporter] = len(self._exporters)
            self._exporters.append(exporter)
        for number in range(count):
            if len(packet) - pos < 8:
                raise DecodeError(f"sFlow datagram announces {count} samples but holds {number}")
            data_format, length = _SAMPLE_HEADER.unpack_from(packet, pos)
            body, pos = pos + 8, pos + 8 + length
            if pos > len(packet):
                raise DecodeError(f"sFlow sample {number} of {length} bytes runs past the end of the datagram")
            enterprise, kind = data_format >> 12, data_format & 0xFFF
            if enterprise or kind not in (FLOW_SAMPLE, COUNTER_SAMPLE, EXPANDED_FLOW_SAMPLE, EXPANDED_COUNTER_SAMPLE):
                self.stats["skipped_samples"] += 1
                continue
            try:
                if kind in (FLOW_SAMPLE, EXPANDED_FLOW_SAMPLE):
                    self._flow_sample(packet[body:pos], kind == EXPANDED_FLOW_SAMPLE, exporter, index, agent,
                                      info, received_us)
                else:
                    self._counter_sample(packet[body:pos], kind == EXPANDED_COUNTER_SAMPLE, exporter, info)
            except (struct.error, IndexError, ValueError, OverflowError) as error:
                raise DecodeError(f"sFlow sample {number} could not be parsed ({error})") from None

    def _flow_sample(self, body: bytes, expanded: bool, exporter, index, agent, info, received_us) -> None:
        if expanded:
            (sequence, source_type, source_index, rate, _pool, drops,
             _in_format, in_if, _out_format, out_if, count) = _EXPANDED_FLOW_SAMPLE.unpack_from(body)
            source, pos = (source_type, source_index), _EXPANDED_FLOW_SAMPLE.size
        else:
            sequence, source_id, rate, _pool, drops, in_if, out_if, count = _FLOW_SAMPLE.unpack_from(body)
            source, pos = (source_id >> 24, source_id & 0xFFFFFF), _FLOW_SAMPLE.size
            in_if, out_if = _interface(in_if), _interface(out_if)
        key = (exporter, agent, info.domain, source)
        info.lost += self._gap(key, sequence)
        previous = self._drops.get(key)
        if previous is not None and drops >= previous:
            self.stats["agent_dropped_samples"] += drops - previous
        self._drops[key] = drops
        sample = _Sample()
        for data_format, record in _records(body, pos, count, "flow"):
            if data_format == RAW_HEADER:
                _raw_header(record, sample)
            elif data_format == SAMPLED_IPV4:
                _sampled_ip(record, _SAMPLED_IPV4, 4, sample)
            elif data_format == SAMPLED_IPV6:
                _sampled_ip(record, _SAMPLED_IPV6, 6, sample)
            elif data_format == EXTENDED_SWITCH:
                src_vlan, _, dst_vlan, _ = _SWITCH.unpack_from(record)
                self.vlans.setdefault(exporter, set()).update(v for v in (src_vlan, dst_vlan) if v)
            elif data_format == EXTENDED_ROUTER:
                _address(record, 0)  # next hop and masks: validated, no column holds them
            elif data_format == EXTENDED_GATEWAY:
                _gateway(record, sample)
        if not sample.family:
            self.stats["skipped_samples"] += 1  # neither IPv4 nor IPv6: not a flow we keep
            return
        rate = min(max(rate, 1), _MAX_RATE)
        self._rows.append((index, received_us, sample.family, sample.src, sample.dst, sample.sport, sample.dport,
                           sample.protocol, sample.flags, sample.length, in_if, out_if, rate,
                           sample.src_as, sample.dst_as))
        info.records += 1
        info.sampling_rate = rate

    def _counter_sample(self, body: bytes, expanded: bool, exporter, info) -> None:
        pos = 12 if expanded else 8
        (count,) = _U32.unpack_from(body, pos)
        for data_format, record in _records(body, pos + 4, count, "counter"):
            if data_format == GENERIC_INTERFACE_COUNTERS:
                values = dict(zip(INTERFACE_COUNTER_NAMES, _INTERFACE_COUNTERS.unpack_from(record)))
                self.interfaces[(exporter, values["if_index"])] = values
        self.stats["counter_samples"] += 1
        info.counter_samples += 1

    def _gap(self, key, sequence: int) -> int:
        last = self._sequences.get(key)
        self._sequences[key] = sequence
        if last is None:
            return 0
        gap = (sequence - last - 1) & 0xFFFFFFFF
        if gap >= 1 << 31:  # late or restarted: count nothing
            if (last - sequence) & 0xFFFFFFFF <= _REORDER_WINDOW:
                self._sequences[key] = last
            return 0
        return gap

    @staticmethod
    def _error(message: str, info: SflowInfo) -> DecodeError:
        error = DecodeError(message)
        error.info = info if info.records or info.counter_samples else None
        return error


def _with_absent_columns(n: int, **columns) -> FlowBatch:
    """A batch of these columns; the others (what sFlow does not carry, such as a NAT
    translation) absent: -1 in signed columns, 0 (no address family) in unsigned ones."""
    for f in dataclass_fields(FlowBatch):
        if f.name not in columns:
            dtype, width = f.metadata["dtype"], f.metadata["width"]
            columns[f.name] = np.full((n,) if width is None else (n, width),
                                      ABSENT if np.issubdtype(dtype, np.signedinteger) else 0, dtype=dtype)
    return FlowBatch(**columns)


def _records(body: bytes, pos: int, count: int, kind: str):
    """(data format, record bytes) of the ``count`` records of a sample from ``pos``."""
    for _ in range(count):
        data_format, length = _SAMPLE_HEADER.unpack_from(body, pos)
        record, pos = body[pos + 8:pos + 8 + length], pos + 8 + length
        if pos > len(body):
            raise DecodeError(f"{kind} record of {length} bytes runs past the end of its sample")
        yield data_format, record


def _address(data: bytes, pos: int) -> tuple[bytes, int]:
    (kind,) = _U32.unpack_from(data, pos)
    if kind == 1:
        end = pos + 8
    elif kind == 2:
        end = pos + 20
    elif kind == 0:
        end = pos + 4
    else:
        raise DecodeError(f"sFlow address of unknown type {kind}")
    if end > len(data):
        raise DecodeError("sFlow address runs past the end of its record")
    return data[pos + 4:end], end


def _interface(value: int) -> int:
    """ifIndex of a compact input/output field; -1 for unknown (0x3FFFFFFF), discarded or multiple interfaces."""
    return value if value >> 30 == 0 and value != 0x3FFFFFFF else ABSENT


def _raw_header(record: bytes, sample: _Sample) -> None:
    protocol, frame_length, stripped, header_length = _SAMPLED_HEADER.unpack_from(record)
    header = record[16:16 + header_length]
    sample.length = max(frame_length - stripped, 0)
    pos, ethertype = 0, None
    if protocol == _ETHERNET:
        if len(header) < 14:
            return
        (ethertype,) = struct.unpack_from(">H", header, 12)
        pos = 14
        while ethertype in _VLAN_TAGS and len(header) >= pos + 4:
            (ethertype,) = struct.unpack_from(">H", header, pos + 2)
            pos += 4
    elif protocol == _IPV4:
        ethertype = 0x0800
    elif protocol == _IPV6:
        ethertype = 0x86DD
    if ethertype == 0x0800 and len(header) >= pos + 20:
        ihl = (header[pos] & 0x0F) * 4
        total, fragment = struct.unpack_from(">H2xH", header, pos + 2)
        sample.family, sample.protocol = 4, header[pos + 9]
        sample.src, sample.dst = header[pos + 12:pos + 16], header[pos + 16:pos + 20]
        sample.length = total
        if fragment & 0x1FFF == 0:
            _transport(header, pos + ihl, sample)
    elif ethertype == 0x86DD and len(header) >= pos + 40:
        (payload,) = struct.unpack_from(">H", header, pos + 4)
        sample.family = 6
        sample.src, sample.dst = header[pos + 8:pos + 24], header[pos + 24:pos + 40]
        sample.length = payload + 40
        next_header, pos = header[pos + 6], pos + 40
        while next_header in _IPV6_EXTENSIONS and len(header) >= pos + 8:
            next_header, pos = header[pos], pos + (header[pos + 1] + 1) * 8
        if next_header == _IPV6_FRAGMENT and len(header) >= pos + 8:
            first = struct.unpack_from(">H", header, pos + 2)[0] & 0xFFF8 == 0
            next_header, pos = header[pos], pos + 8
            sample.protocol = next_header
            if first:
                _transport(header, pos, sample)
            return
        sample.protocol = next_header
        _transport(header, pos, sample)


def _transport(header: bytes, pos: int, sample: _Sample) -> None:
    if sample.protocol in (6, 17, 132) and len(header) >= pos + 4:
        sample.sport, sample.dport = struct.unpack_from(">HH", header, pos)
        if sample.protocol == 6 and len(header) >= pos + 14:
            sample.flags = header[pos + 13]


def _sampled_ip(record: bytes, layout: struct.Struct, family: int, sample: _Sample) -> None:
    length, protocol, src, dst, sport, dport, flags, _ = layout.unpack_from(record)
    if protocol > 255 or sport > 0xFFFF or dport > 0xFFFF:
        raise DecodeError(f"sampled IP record holds protocol {protocol}, ports {sport} and {dport}")
    sample.family, sample.protocol, sample.src, sample.dst = family, protocol, src, dst
    sample.sport, sample.dport, sample.length = sport, dport, length
    sample.flags = flags & 0xFF if protocol == 6 else ABSENT


def _gateway(record: bytes, sample: _Sample) -> None:
    _, pos = _address(record, 0)
    own_as, src_as, _peer_as, segments = struct.unpack_from(">IIII", record, pos)
    pos += 16
    path: list[int] = []
    for _ in range(segments):
        _kind, length = struct.unpack_from(">II", record, pos)
        if pos + 8 + 4 * length > len(record):
            raise DecodeError(f"AS path segment of {length} numbers runs past the end of its record")
        path.extend(struct.unpack_from(f">{length}I", record, pos + 8))
        pos += 8 + 4 * length
    sample.src_as = src_as
    sample.dst_as = path[-1] if path else own_as
