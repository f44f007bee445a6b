"""Templates: parsing NetFlow v9 / IPFIX template records, and decoding records in columns.

A template is compiled once into a ``Layout``: a big-endian numpy structured dtype over the
fields the collector uses, at their offsets. Records of a fixed-length template are kept as the
exporter sent them; records of an IPFIX template with variable-length fields are first
"compacted" (their fixed fields copied, the variable ones dropped), so that every queued record
of a layout has the same size and a whole queue decodes with one ``np.frombuffer``.
NetFlow v5's record is such a layout too (``fields.V5_RECORD``).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ispflow.collector import fields as ie
from ispflow.collector.batches import ABSENT

_HH = struct.Struct(">HH")
_HHH = struct.Struct(">HHH")
_H = struct.Struct(">H")
_I = struct.Struct(">I")

# Columns of the per-record context array built from each packet's header (see decoder.py).
CTX_EXPORTER, CTX_DOMAIN, CTX_EXPORT_US, CTX_UPTIME_MS, CTX_INIT_US, CTX_RATE = range(6)
CTX_WIDTH = 6

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01


class DecodeError(Exception):
    """A malformed or hostile packet; str() is one sentence saying what is wrong."""

    def __init__(self, message: str):
        super().__init__(message)
        self.info = None  # PacketInfo of what the packet's valid earlier sets gave, if anything


@dataclass(frozen=True)
class Template:
    template_id: int
    fields: tuple  # ((element id, length, enterprise number or 0), ...)
    options: bool = False


@dataclass(frozen=True)
class Withdrawal:
    template_id: int | None  # None: every template of that kind
    options: bool = False


def parse_v9_templates(packet, pos: int, end: int, options: bool) -> list[Template]:
    """Template records of one NetFlow v9 template (0) or options template (1) flowset."""
    out = []
    while end - pos >= (6 if options else 4):
        if options:
            tid, scope_len, option_len = _HHH.unpack_from(packet, pos)
            pos += 6
            if scope_len % 4 or option_len % 4:
                raise DecodeError(f"options template {tid} has field lengths that are not multiples of 4")
            size = scope_len + option_len
        else:
            tid, count = _HH.unpack_from(packet, pos)
            if tid == 0 and not any(packet[pos:end]):
                break  # padding to the end of the flowset
            pos += 4
            size = 4 * count
        _check_template_id(tid)
        if size == 0:
            raise DecodeError(f"template {tid} has no fields")
        if pos + size > end:
            raise DecodeError(f"template {tid} is longer than its flowset")
        spec = tuple((f, length, 0) for f, length in _HH.iter_unpack(packet[pos:pos + size]))
        pos += size
        out.append(_checked(Template(tid, spec, options)))
    return out


def parse_ipfix_templates(packet, pos: int, end: int, options: bool) -> list[Template | Withdrawal]:
    """Template records, and withdrawals, of one IPFIX template (2) or options template (3) set."""
    out: list[Template | Withdrawal] = []
    set_id = 3 if options else 2
    while end - pos >= 4:
        tid, count = _HH.unpack_from(packet, pos)
        if tid == 0 and not any(packet[pos:end]):
            break  # padding: shorter than any template record, but may exceed four bytes
        pos += 4
        if count == 0:
            if tid == set_id:
                out.append(Withdrawal(None, options))
            else:
                _check_template_id(tid)
                out.append(Withdrawal(tid, options))
            continue
        _check_template_id(tid)
        if options:
            if end - pos < 2:
                raise DecodeError(f"options template {tid} is cut off before its scope field count")
            (scope,) = _H.unpack_from(packet, pos)
            pos += 2
            if scope == 0 or scope > count:
                raise DecodeError(f"options template {tid} has {scope} scope fields of {count}")
        spec = []
        for _ in range(count):
            if end - pos < 4:
                raise DecodeError(f"template {tid} is longer than its set")
            f, length = _HH.unpack_from(packet, pos)
            pos += 4
            enterprise = 0
            if f & 0x8000:
                if end - pos < 4:
                    raise DecodeError(f"template {tid} is longer than its set")
                (enterprise,) = _I.unpack_from(packet, pos)
                pos += 4
                f &= 0x7FFF
            spec.append((f, length, enterprise))
        out.append(_checked(Template(tid, tuple(spec), options)))
    return out


def _check_template_id(tid: int) -> None:
    if tid < 256:
        raise DecodeError(f"template id {tid} is reserved (template ids start at 256)")


def _checked(template: Template) -> Template:
    """Refuse a template whose records would have no length.

    Length 65535 marks an IPFIX variable-length field. NetFlow v9 (RFC 3954) does not define
    it, but H3C NetStream sends it in v9 templates and means the same, so v9 reads it the same
    way (as collectors in the field do).
    """
    fixed = sum(length for _, length, _ in template.fields if length != ie.VARIABLE_LENGTH)
    has_variable = any(length == ie.VARIABLE_LENGTH for _, length, _ in template.fields)
    if fixed == 0 and not has_variable:
        raise DecodeError(f"template {template.template_id} describes records of length 0")
    return template


def walk_records(packet, pos: int, end: int, spec) -> tuple[list[list[tuple[int, int, bytes]]], int]:
    """Records of a data set, field by field, in Python (options data and variable-length templates).

    Returns the records as lists of (element, enterprise, value bytes) and the end of the last one;
    bytes after it that cannot hold a record are padding.
    """
    minimum = sum(1 if length == ie.VARIABLE_LENGTH else length for _, length, _ in spec)
    records = []
    while end - pos >= minimum:
        record = []
        for f, length, enterprise in spec:
            if length == ie.VARIABLE_LENGTH:
                if pos >= end:
                    raise DecodeError("a variable-length field runs past the end of its set")
                length = packet[pos]
                pos += 1
                if length == 255:
                    if end - pos < 2:
                        raise DecodeError("a variable-length field runs past the end of its set")
                    (length,) = _H.unpack_from(packet, pos)
                    pos += 2
            if pos + length > end:
                raise DecodeError("a record runs past the end of its set")
            record.append((f, enterprise, packet[pos:pos + length]))
            pos += length
        records.append(record)
    return records, pos


def _column_format(f: int, length: int):
    """The dtype of a used element at this length, or None to skip it."""
    if f in ie.ADDRESS_LENGTHS:
        return ("u1", (length,)) if ie.ADDRESS_LENGTHS[f] == length else None
    if f in ie.INTEGER_ELEMENTS and 1 <= length <= 8:
        return f">u{length}" if length in (1, 2, 4, 8) else ("u1", (length,))
    return None


class Layout:
    """A template compiled for columnar decoding (shared by every exporter sending the same one)."""

    def __init__(self, spec: tuple):
        self.spec = spec
        self.variable = any(length == ie.VARIABLE_LENGTH for _, length, _ in spec)
        self.columns: dict[int, tuple[int, int]] = {}
        names, formats, offsets = [], [], []
        offset = 0
        for f, length, enterprise in spec:
            if length == ie.VARIABLE_LENGTH:
                continue
            fmt = None if enterprise or f in self.columns else _column_format(f, length)
            if fmt is not None:
                self.columns[f] = (offset, length)
                names.append(f"f{f}")
                formats.append(fmt)
                offsets.append(offset)
            offset += length
        self.record_length = max(offset, 1)  # a compacted record keeps at least one byte
        self.minimum_length = offset + sum(1 for _, length, _ in spec if length == ie.VARIABLE_LENGTH)
        # Lengths of the fixed fields before each variable-length field, and after the last one.
        self.fixed_runs = [0]
        for _, length, _ in spec:
            if length == ie.VARIABLE_LENGTH:
                self.fixed_runs.append(0)
            else:
                self.fixed_runs[-1] += length
        self.dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets,
                               "itemsize": self.record_length})
        self.nat = ie.NAT_EVENT in self.columns
        self.addressed = any(f in self.columns for f in (ie.SOURCE_IPV4, ie.SOURCE_IPV6,
                                                         ie.DESTINATION_IPV4, ie.DESTINATION_IPV6))
        self.sampling_fields = [f for f in (ie.SAMPLING_INTERVAL, ie.SAMPLER_RANDOM_INTERVAL,
                                            ie.SAMPLING_PACKET_INTERVAL) if f in self.columns]

    def uniform(self, body: bytes) -> tuple[tuple, int] | None:
        """A fixed-length spec for this set, when all its records have the first one's field lengths.

        Exporters usually repeat the same lengths (an interface name, an application id), so the
        set then decodes like a fixed-length one; the variable fields become skipped fields
        (element 0). None when the lengths differ, and the set has to be compacted.
        """
        spec, prefixes, pos = [], [], 0
        for f, length, enterprise in self.spec:
            if length != ie.VARIABLE_LENGTH:
                spec.append((f, length, enterprise))
                pos += length
                continue
            if pos >= len(body):
                return None
            size, prefix = body[pos], 1
            if size == 255:
                if pos + 3 > len(body):
                    return None
                (size,) = _H.unpack_from(body, pos + 1)
                prefix = 3
            prefixes.append((pos, body[pos:pos + prefix]))
            spec.append((0, prefix + size, 0))
            pos += prefix + size
        if pos > len(body):
            return None
        count = len(body) // pos
        if len(body) - count * pos >= self.minimum_length:
            return None  # room for another record, of other lengths
        rows = np.frombuffer(body, dtype=np.uint8, count=count * pos).reshape(count, pos)
        for offset, prefix in prefixes:
            if not (rows[:, offset:offset + len(prefix)] == np.frombuffer(prefix, dtype=np.uint8)).all():
                return None
        return tuple(spec), count

    def compact(self, packet, pos: int, end: int) -> tuple[bytes, int]:
        """The set's records with variable-length fields dropped, and their count."""
        *runs, tail = self.fixed_runs
        filler = b"" if self.record_length == sum(self.fixed_runs) else b"\0"
        out = bytearray()
        count = 0
        while end - pos >= self.minimum_length:
            for fixed in runs:
                if pos + fixed >= end:
                    raise DecodeError("a variable-length field runs past the end of its set")
                out += packet[pos:pos + fixed]
                pos += fixed
                size = packet[pos]
                pos += 1
                if size == 255:
                    size = int.from_bytes(packet[pos:pos + 2], "big")
                    pos += 2
                pos += size
            if pos + tail > end:
                raise DecodeError("a record runs past the end of its set")
            out += packet[pos:pos + tail]
            out += filler
            pos += tail
            count += 1
        return bytes(out), count

    def uptime_end(self, arr) -> np.ndarray | None:
        """flowEndSysUpTime (else flowStartSysUpTime) in ms, when the records' times rest on uptime
        alone (no absolute or delta time, no systemInitTimeMilliseconds in the record)."""
        if ie.SYSTEM_INIT_TIME_MILLISECONDS in self.columns or any(
                f in self.columns for f in (ie.FLOW_END_SECONDS, ie.FLOW_END_MILLISECONDS, ie.FLOW_END_MICROSECONDS,
                                            ie.FLOW_END_NANOSECONDS, ie.FLOW_END_DELTA_MICROSECONDS)):
            return None
        return self._first_int(arr, ie.FLOW_END_SYS_UPTIME, ie.FLOW_START_SYS_UPTIME)

    def last_rate(self, record: bytes) -> int | None:
        """The sampling rate a data record's own sampling fields give (read at feed time)."""
        values = {f: int.from_bytes(record[o:o + n], "big") for f, (o, n) in self.columns.items()
                  if f in (ie.SAMPLING_INTERVAL, ie.SAMPLER_RANDOM_INTERVAL,
                           ie.SAMPLING_PACKET_INTERVAL, ie.SAMPLING_PACKET_SPACE)}
        return rate_from(values)

    # -- columnar decoding ------------------------------------------------------------------

    def _int(self, arr, f: int) -> np.ndarray | None:
        if f not in self.columns:
            return None
        raw = arr[f"f{f}"]
        if raw.ndim == 1:
            return raw.astype(np.int64)
        value = np.zeros(len(raw), dtype=np.int64)
        for i in range(raw.shape[1]):
            value = (value << 8) | raw[:, i]
        return value

    def _first_int(self, arr, *elements) -> np.ndarray | None:
        for f in elements:
            value = self._int(arr, f)
            if value is not None:
                return value
        return None

    def _or_absent(self, value, n, dtype, absent=ABSENT):
        if value is None:
            return np.full(n, absent, dtype=dtype)
        return value.astype(dtype)

    def _address(self, arr, v4: int, v6: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(family, 16-byte address) from the IPv4 and/or IPv6 element; family 0 where neither."""
        family = np.zeros(n, dtype=np.uint8)
        out = np.zeros((n, 16), dtype=np.uint8)
        if v6 in self.columns:
            out[:] = arr[f"f{v6}"]
            family[:] = 6
        if v4 in self.columns:
            a4 = arr[f"f{v4}"]
            if v6 in self.columns:
                use4 = a4.any(axis=1) | ~out.any(axis=1)
                out[use4] = 0
                out[use4, :4] = a4[use4]
                family[use4] = 4
            else:
                out[:, :4] = a4
                family[:] = 4
        return family, out

    def _ntp(self, arr, f):
        value = arr[f"f{f}"].astype(np.uint64) if self.columns[f][1] == 8 else None
        if value is None:
            return None
        seconds = (value >> np.uint64(32)).astype(np.int64)
        fraction = (value & np.uint64(0xFFFFFFFF)).astype(np.int64)
        return (seconds - NTP_UNIX_OFFSET) * 1_000_000 + ((fraction * 1_000_000) >> 32)

    def _time(self, arr, ctx, absolute_s, absolute_ms, absolute_us, absolute_ns, delta_us, uptime):
        if absolute_us in self.columns and self.columns[absolute_us][1] == 8:
            return self._ntp(arr, absolute_us)
        if absolute_ns in self.columns and self.columns[absolute_ns][1] == 8:
            return self._ntp(arr, absolute_ns)
        if absolute_ms in self.columns:
            return self._int(arr, absolute_ms) * 1000
        if absolute_s in self.columns:
            return self._int(arr, absolute_s) * 1_000_000
        if delta_us in self.columns:
            return ctx[:, CTX_EXPORT_US] - self._int(arr, delta_us)
        if uptime in self.columns:
            ms = self._int(arr, uptime)
            init_ms = self._int(arr, ie.SYSTEM_INIT_TIME_MILLISECONDS)
            if init_ms is not None:
                return (init_ms + ms) * 1000
            up = ctx[:, CTX_UPTIME_MS]
            behind = (up - ms) & 0xFFFFFFFF  # uptime counters wrap after 49.7 days
            behind = np.where(behind >= 1 << 31, behind - (1 << 32), behind)
            by_uptime = ctx[:, CTX_EXPORT_US] - behind * 1000
            by_init = ctx[:, CTX_INIT_US] + ms * 1000
            return np.where(up >= 0, by_uptime, np.where(ctx[:, CTX_INIT_US] >= 0, by_init, ctx[:, CTX_EXPORT_US]))
        return None

    def _times(self, arr, ctx):
        """(start, end, end_exported) in µs since the epoch."""
        start = self._time(arr, ctx, ie.FLOW_START_SECONDS, ie.FLOW_START_MILLISECONDS,
                           ie.FLOW_START_MICROSECONDS, ie.FLOW_START_NANOSECONDS,
                           ie.FLOW_START_DELTA_MICROSECONDS, ie.FLOW_START_SYS_UPTIME)
        end = self._time(arr, ctx, ie.FLOW_END_SECONDS, ie.FLOW_END_MILLISECONDS,
                         ie.FLOW_END_MICROSECONDS, ie.FLOW_END_NANOSECONDS,
                         ie.FLOW_END_DELTA_MICROSECONDS, ie.FLOW_END_SYS_UPTIME)
        end_exported = end is not None
        if start is None:
            start = end if end is not None else ctx[:, CTX_EXPORT_US].copy()
        if end is None:
            end = start
        return start, end, end_exported

    def _sampling(self, arr, ctx, samplers) -> np.ndarray:
        rate = ctx[:, CTX_RATE].copy()
        sampler = self._first_int(arr, ie.SAMPLER_ID, ie.SELECTOR_ID)
        if sampler is not None and samplers:
            key = (ctx[:, CTX_DOMAIN] << 32) | (sampler & 0xFFFFFFFF)
            for k in np.unique(key):
                known = samplers.get((int(k) >> 32, int(k) & 0xFFFFFFFF))
                if known:
                    rate[key == k] = known
        interval = self._int(arr, ie.SAMPLING_INTERVAL)
        if interval is None:
            interval = self._int(arr, ie.SAMPLER_RANDOM_INTERVAL)
        if interval is not None:
            rate = np.where(interval > 0, interval, rate)
        packet_interval = self._int(arr, ie.SAMPLING_PACKET_INTERVAL)
        if packet_interval is not None:
            space = self._int(arr, ie.SAMPLING_PACKET_SPACE)
            space = 0 if space is None else space
            safe = np.maximum(packet_interval, 1)
            rate = np.where(packet_interval > 0, (packet_interval + space) // safe, rate)
        return np.clip(rate, 1, 2**31 - 1).astype(np.int32)

    def decode_flows(self, arr, ctx, samplers) -> dict:
        """FlowBatch columns (without ``exporters``) for the records ``arr`` with context ``ctx``."""
        n = len(arr)
        start, end, _ = self._times(arr, ctx)
        src_family, src = self._address(arr, ie.SOURCE_IPV4, ie.SOURCE_IPV6, n)
        dst_family, dst = self._address(arr, ie.DESTINATION_IPV4, ie.DESTINATION_IPV6, n)
        family = np.maximum(src_family, dst_family)
        family[family == 0] = 4
        protocol = self._or_absent(self._int(arr, ie.PROTOCOL), n, np.int16, 0)
        src_port = self._or_absent(self._int(arr, ie.SOURCE_PORT), n, np.int32, 0)
        dst_port = self._or_absent(self._int(arr, ie.DESTINATION_PORT), n, np.int32, 0)
        icmp = self._icmp(arr)
        if icmp is not None:
            use = ((protocol == 1) | (protocol == 58)) & (src_port == 0) & (dst_port == 0)
            dst_port = np.where(use, icmp, dst_port).astype(np.int32)
        tcp_flags = self._int(arr, ie.TCP_CONTROL_BITS)
        return {
            "exporter": ctx[:, CTX_EXPORTER].astype(np.int32),
            "ts_start": start,
            "ts_end": end,
            "family": family,
            "src_addr": src,
            "dst_addr": dst,
            "src_port": src_port,
            "dst_port": dst_port,
            "protocol": protocol,
            "tcp_flags": self._or_absent(None if tcp_flags is None else tcp_flags & 0x7FFF, n, np.int16),
            "bytes": self._counter(arr, n, ie.OCTET_DELTA_COUNT, ie.OCTET_TOTAL_COUNT, ie.POST_OCTET_DELTA_COUNT),
            "packets": self._counter(arr, n, ie.PACKET_DELTA_COUNT, ie.PACKET_TOTAL_COUNT,
                                     ie.POST_PACKET_DELTA_COUNT),
            "in_if": self._or_absent(self._int(arr, ie.INGRESS_INTERFACE), n, np.int64),
            "out_if": self._or_absent(self._int(arr, ie.EGRESS_INTERFACE), n, np.int64),
            "sampling_rate": self._sampling(arr, ctx, samplers),
            "src_as": self._or_absent(self._int(arr, ie.BGP_SOURCE_AS), n, np.int64),
            "dst_as": self._or_absent(self._int(arr, ie.BGP_DESTINATION_AS), n, np.int64),
            **self._post_nat(arr, n, "src", src_family, src, (ie.POST_NAT_SOURCE_IPV4, ie.POST_NAT_SOURCE_IPV6),
                             ie.NSEL_XLATE_SOURCE_IPV4, (ie.POST_NAPT_SOURCE_PORT, ie.NSEL_XLATE_SOURCE_PORT)),
            **self._post_nat(arr, n, "dst", dst_family, dst,
                             (ie.POST_NAT_DESTINATION_IPV4, ie.POST_NAT_DESTINATION_IPV6),
                             ie.NSEL_XLATE_DESTINATION_IPV4,
                             (ie.POST_NAPT_DESTINATION_PORT, ie.NSEL_XLATE_DESTINATION_PORT)),
        }

    def _post_nat(self, arr, n, side, family, address, standard, nsel, ports) -> dict:
        """One side's translation in a flow record (IPFIX 225-228, NSEL 40001-40004).

        An all-zero address, or one equal to the side's own address, is no translation; a
        translated port is kept with a translated address only.
        """
        post_family, post = self._address(arr, *standard, n)
        if nsel in self.columns and not post_family.any():
            post_family, post = self._address(arr, nsel, -1, n)
        post_family[~post.any(axis=1) | ((post_family == family) & (post == address).all(axis=1))] = 0
        port = self._or_absent(self._first_int(arr, *ports), n, np.int32)
        return {f"post_nat_{side}_family": post_family, f"post_nat_{side}_addr": post,
                f"post_nat_{side}_port": np.where(post_family > 0, port, ABSENT).astype(np.int32)}

    def _counter(self, arr, n, *elements) -> np.ndarray:
        value = self._first_int(arr, *elements)
        if value is None:
            return np.zeros(n, dtype=np.int64)
        return np.where(value < 0, np.iinfo(np.int64).max, value)  # 64-bit counters beyond int64

    def _icmp(self, arr):
        type_code = self._first_int(arr, ie.ICMP_TYPE_CODE_IPV4, ie.ICMP_TYPE_CODE_IPV6)
        if type_code is not None:
            return type_code & 0xFFFF
        kind = self._first_int(arr, ie.ICMP_TYPE_IPV4, ie.ICMP_TYPE_IPV6)
        if kind is None:
            return None
        code = self._first_int(arr, ie.ICMP_CODE_IPV4, ie.ICMP_CODE_IPV6)
        return ((kind & 0xFF) << 8) | (0 if code is None else code & 0xFF)

    def decode_nat(self, arr, ctx) -> dict:
        """NatBatch columns (without ``exporters``) for records of a template with natEvent."""
        n = len(arr)
        start, end, end_exported = self._times(arr, ctx)
        observed = self._int(arr, ie.OBSERVATION_TIME_MILLISECONDS)
        family, private = self._address(arr, ie.SOURCE_IPV4, ie.SOURCE_IPV6, n)
        public_family, public = self._address(arr, ie.POST_NAT_SOURCE_IPV4, ie.POST_NAT_SOURCE_IPV6, n)
        dst_family, dst = self._address(arr, ie.DESTINATION_IPV4, ie.DESTINATION_IPV6, n)
        return {
            "exporter": ctx[:, CTX_EXPORTER].astype(np.int32),
            "ts": observed * 1000 if observed is not None else start,
            "ts_end": end if end_exported else np.full(n, ABSENT, dtype=np.int64),
            "event": self._int(arr, ie.NAT_EVENT).astype(np.int16),
            "protocol": self._or_absent(self._int(arr, ie.PROTOCOL), n, np.int16),
            "family": family,
            "private_addr": private,
            "private_port": self._or_absent(self._int(arr, ie.SOURCE_PORT), n, np.int32),
            "public_family": public_family,
            "public_addr": public,
            "public_port": self._or_absent(self._int(arr, ie.POST_NAPT_SOURCE_PORT), n, np.int32),
            "port_block_start": self._or_absent(self._int(arr, ie.PORT_RANGE_START), n, np.int32),
            "port_block_end": self._or_absent(self._int(arr, ie.PORT_RANGE_END), n, np.int32),
            "dst_family": dst_family,
            "dst_addr": dst,
            "dst_port": self._or_absent(self._int(arr, ie.DESTINATION_PORT), n, np.int32),
        }


def rate_from(values: dict) -> int | None:
    """A 1-in-N sampling rate from sampling elements (RFC 3954 34/50, RFC 5477 305/306)."""
    interval = values.get(ie.SAMPLING_PACKET_INTERVAL, 0)
    if interval > 0:
        return max(1, (interval + values.get(ie.SAMPLING_PACKET_SPACE, 0)) // interval)
    for f in (ie.SAMPLER_RANDOM_INTERVAL, ie.SAMPLING_INTERVAL):
        if values.get(f, 0) > 0:
            return min(values[f], 2**31 - 1)
    return None
