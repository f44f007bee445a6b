"""NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) decoding, in two steps.

``FlowDecoder.feed(packet)`` reads only headers and sets (``struct``): it learns templates and
options data, and appends each data set's raw records, with the packet's context (exporter,
export time, uptime, sampling rate), to the queue of its record layout. ``drain()`` then decodes
every queue in one numpy pass per layout (``templates.Layout``) into a ``FlowBatch`` and a
``NatBatch``. No Python object is built per flow.

Rules worth knowing:

* **Malformed packets** raise ``DecodeError`` (one sentence). Sets are read in order; templates
  learnt and records queued from the sets *before* the bad one are kept, and the error's
  ``info`` attribute is the ``PacketInfo`` of what was kept (``None`` when nothing was).
* **State** is kept per (exporter, version, domain): the v9 source id, the IPFIX observation
  domain, or v5 ``engine_type << 8 | engine_id``.
* **Data before its template** is held, with its packet's context, per template id, and decoded
  when the template arrives. The number of records in a held set is unknown until then, so
  ``PacketInfo.pending`` counts held *sets*; ``PacketInfo.records`` counts records queued by
  this call, including held records the packet's templates released. Held bytes are bounded per
  (exporter, domain, template id) by ``max_pending_records`` × 16 bytes (16 × that in all);
  sets over the bound, and sets older than ``pending_ttl``, are dropped and counted
  (``stats['expired_pending_records']`` is a lower bound: a set holds at least one record).
* **Times** (µs since the epoch, UTC): absolute IPFIX elements first (µs, ns, ms, s), then the
  delta form (relative to the export time), then sysUpTime-relative: against the header's uptime
  for v5/v9, against systemInitTimeMilliseconds (from the record or options data) for IPFIX —
  or, when an IPFIX exporter never sends it (MikroTik), against its *estimated* boot time: the
  smallest export time − flowEndSysUpTime seen from that domain (a flow is exported after it
  ends, so each record bounds the boot time from above). The estimate is kept in the state,
  and learnt afresh when the uptime goes backwards (a reboot, or the 49.7-day wrap).
  A missing start or end takes the other's value.
* **Records without addresses** (no source and no destination address, or both zero: a Cisco
  WLC's application records, nProbe L7 records) are not traffic evidence: they are counted as
  dropped ``addressless_records`` for their exporter and not returned.
* **Bounded state** (``Limits``): observation domains per exporter, templates per domain and
  fields per template are capped; what is refused is counted per exporter (``take_dropped``).
  A new domain over the cap drops its packet (``StateLimit``, a ``DecodeError``); a template
  over a cap is skipped, the packet's other sets are read.
* **Padding**: zero bytes after the last set, and an empty (length 0) set header followed only
  by zeros, end the message quietly (PAN-OS pads v9 packets, Cisco ACI ends with an empty set).
* **Sampling**: the v5 header; options data with samplingInterval (34), samplerRandomInterval
  (50) or samplingPacketInterval/Space (305/306) set the (exporter, domain)'s rate for later
  records, and, with a samplerId (48) or selectorId (302), that sampler's rate, which data
  records naming the sampler use. Sampling fields in a data record apply to that record.
* **NAT events**: records of a template with natEvent (230) go to the ``NatBatch``: private side
  = source address (8/27) and port (7); public side = postNATSourceIPv4/IPv6Address (225/281)
  and postNAPTSourceTransportPort (227); port block = portRangeStart/End (361/362); destination
  = 12/28 and 11; time = observationTimeMilliseconds (323), else the flow start, else the export
  time. Cisco NEL (NetFlow v9 with natEvent) follows this rule; Cisco ASA NSEL (its own
  40000-range elements) is not decoded as NAT; flow records that carry post-NAT fields without
  natEvent (MikroTik; ASA NSEL's 40001-40004) stay flows and keep the translation in their
  ``post_nat_*`` columns (``Layout._post_nat``).
* **Speed**: a fixed-length template's records are queued as received. A set of a template
  with variable-length fields whose records all repeat the first one's lengths is queued the
  same way (under a fixed layout for those lengths); otherwise its records are compacted one by
  one in Python at feed time (a slower path).
* **Sequence numbers** give ``PacketInfo.lost``: v5 counts flows, IPFIX data records, v9 export
  packets (missing packets × the average records per packet). A backward jump is a late packet
  (within 1,000 of what was expected: state kept) or an exporter restart (state reset); neither
  counts loss. After an IPFIX packet with held sets the next gap is not counted, since the
  held records' number was unknown.
"""
from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass, fields as dataclass_fields

import numpy as np

from ispflow.collector import fields as ie
from ispflow.collector.batches import FlowBatch, NatBatch, concat
from ispflow.collector.sflow import SflowDecoder, is_sflow
from ispflow.collector.templates import (
    CTX_DOMAIN,
    CTX_EXPORT_US,
    CTX_EXPORTER,
    CTX_INIT_US,
    CTX_UPTIME_MS,
    CTX_WIDTH,
    DecodeError,
    Layout,
    Template,
    Withdrawal,
    parse_ipfix_templates,
    parse_v9_templates,
    rate_from,
    walk_records,
)

__all__ = ["DecodeError", "FlowDecoder", "Limits", "PacketInfo", "StateLimit"]

_V5_HEADER = struct.Struct(">HHIIIIBBH")
_V9_HEADER = struct.Struct(">HHIIII")
_IPFIX_HEADER = struct.Struct(">HHIII")
_SET_HEADER = struct.Struct(">HH")
_VERSION = struct.Struct(">H")

V5_LAYOUT_SPEC = tuple((f, length, 0) for f, length in ie.V5_RECORD)
_BYTES_PER_HELD_RECORD = 16
_REORDER_WINDOW = 1000
_MAX_CACHED_LAYOUTS = 4096
_STATE_FORMAT = 1
# An uptime this far below the largest one seen from a domain means the exporter restarted (or
# its 32-bit millisecond uptime wrapped); flows end at most an inactive timeout before export.
_REBOOT_SLACK_MS = 300_000


@dataclass(frozen=True)
class Limits:
    """Caps on what one exporter can make the decoder remember (templates are the costly part).

    The defaults hold every real exporter we know of (the largest templates seen have ~100
    fields, the most templates per domain a few dozen). A template costs ~200 bytes per field
    (measured: docs/benchmarks.md), so ``fields_per_exporter`` keeps one exporter's templates
    near 20 MB whatever it sends; the other caps keep the bookkeeping per domain small.
    """

    domains_per_exporter: int = 16
    templates_per_domain: int = 256
    fields_per_template: int = 256
    fields_per_exporter: int = 100_000


class StateLimit(DecodeError):
    """A packet refused because its exporter has as many observation domains as allowed."""

    reason = "refused_domains"


@dataclass
class PacketInfo:
    version: int            # 5, 9 or 10
    exporter: str           # as given to feed()
    domain: int             # v9 source id / IPFIX observation domain / v5 (engine_type<<8 | engine_id)
    sequence: int | None
    export_time: float      # unix seconds from the packet header (for clock skew)
    records: int            # data records queued by this call (incl. held ones released by its templates)
    lost: int               # flows estimated lost from the sequence gap
    templates: int          # templates + options templates learnt/refreshed/withdrawn
    pending: int            # data sets held because their template is not known yet
    sampling_rate: int | None  # rate learnt from this packet, if any


class _Domain:
    """What one (exporter, version, domain) has told us."""

    __slots__ = ("key", "index", "exporter_index", "templates", "rate", "samplers", "init_us",
                 "last_sequence", "last_records", "average", "uncounted", "pending", "boot_us", "max_end_ms",
                 "template_sets")

    def __init__(self, key, index, exporter_index):
        self.key = key
        self.index = index
        self.exporter_index = exporter_index
        self.templates: dict[int, tuple[Template, Layout | None]] = {}
        self.rate = 1
        self.samplers: dict[int, int] = {}
        self.init_us = -1
        self.last_sequence: int | None = None
        self.last_records = 0
        self.average = 0.0
        self.uncounted = False
        self.pending: dict[int, list] = {}
        self.boot_us = -1       # estimated boot time, for IPFIX uptime fields without systemInitTime
        self.max_end_ms = -1    # largest flowEndSysUpTime seen, to notice a reboot
        self.template_sets: dict[bool, tuple[bytes, list]] = {}  # the last template set of each kind, parsed


class _Queue:
    __slots__ = ("chunks", "counts", "contexts")

    def __init__(self):
        self.chunks: list[bytes] = []
        self.counts: list[int] = []
        self.contexts: list[tuple] = []


class _Packet:
    """Per-packet bookkeeping while its sets are read."""

    __slots__ = ("records", "options_records", "templates", "pending", "rate", "context")

    def __init__(self, context):
        self.records = 0
        self.options_records = 0
        self.templates = 0
        self.pending = 0
        self.rate = None
        self.context = context


class FlowDecoder:
    """Decodes NetFlow v5/v9 and IPFIX packets from any number of exporters into column batches.

    ``stats``: held_sets / held_bytes (held now), held_records (held records decoded later),
    expired_pending_records (held sets dropped after ``pending_ttl``), dropped_pending_sets
    (refused over the bound), malformed_pending_sets (held sets their template could not read).
    """

    def __init__(self, pending_ttl: float = 30.0, max_pending_records: int = 100_000, limits: Limits = Limits()):
        self.pending_ttl = pending_ttl
        self.limits = limits
        self.max_pending_bytes = max_pending_records * _BYTES_PER_HELD_RECORD
        self.max_total_pending_bytes = 16 * self.max_pending_bytes
        self.stats = {"held_records": 0, "held_sets": 0, "held_bytes": 0,
                      "expired_pending_records": 0, "dropped_pending_sets": 0,
                      "malformed_pending_sets": 0}
        self._exporters: list[str] = []
        self._exporter_index: dict[str, int] = {}
        self._domains: dict[tuple, _Domain] = {}
        self._domain_counts: Counter = Counter()  # per exporter address
        self._field_counts: Counter = Counter()   # template fields remembered, per exporter address
        self._dropped: Counter = Counter()        # (exporter address, reason) -> records/templates/packets
        self._domain_list: list[_Domain] = []
        self._layouts: dict[tuple, Layout] = {}
        self._queues: dict[Layout, _Queue] = {}
        self._held_bytes: dict[tuple[int, int], int] = {}
        self._next_expiry = 0.0
        self._v5_layout = self._layout(V5_LAYOUT_SPEC)
        self.sflow = SflowDecoder()  # sFlow v5 arrives on the same sockets (ispflow.collector.sflow)

    # -- public API ---------------------------------------------------------------------------

    def feed(self, packet: bytes, exporter: str, received_at: float) -> PacketInfo:
        """Parse headers and sets (cheap, struct); queue data records; raise DecodeError only."""
        if received_at >= self._next_expiry:
            self.expire(received_at)
        if len(packet) < 2:
            raise DecodeError(f"packet of {len(packet)} bytes is too short for a NetFlow header")
        if is_sflow(packet):
            return self.sflow.feed(packet, exporter, received_at)
        (version,) = _VERSION.unpack_from(packet)
        try:
            if version == 5:
                return self._feed_v5(packet, exporter)
            if version == 9:
                return self._feed_v9(packet, exporter, received_at)
            if version == 10:
                return self._feed_ipfix(packet, exporter, received_at)
        except (struct.error, IndexError, ValueError, OverflowError) as error:
            raise DecodeError(f"version {version} packet could not be parsed ({error})") from None
        raise DecodeError(f"unknown NetFlow version {version}")

    def drain(self) -> tuple[FlowBatch, NatBatch]:
        """Vectorised decode of everything queued since the last drain."""
        queues, self._queues = self._queues, {}
        samplers = {(d.index, sid): rate for d in self._domain_list for sid, rate in d.samplers.items()}
        prepared = []
        for layout, queue in queues.items():
            n = sum(queue.counts)
            if not n:
                continue
            arr = np.frombuffer(b"".join(queue.chunks), dtype=layout.dtype, count=n)
            ctx = np.repeat(np.array(queue.contexts, dtype=np.int64).reshape(-1, CTX_WIDTH),
                            np.array(queue.counts, dtype=np.int64), axis=0)
            prepared.append((layout, arr, ctx))
        self._estimate_boot_times(prepared)
        flow_parts, nat_parts = [], []
        for layout, arr, ctx in prepared:
            if layout.nat:
                nat_parts.append(layout.decode_nat(arr, ctx))
            elif not layout.addressed:
                self._drop_records(ctx[:, CTX_EXPORTER], "addressless_records")
            else:
                flow_parts.append(self._addressed(layout.decode_flows(arr, ctx, samplers)))
        flows = _batch(FlowBatch, flow_parts, self._exporters)
        sampled = self.sflow.drain()
        if len(sampled):
            flows = concat([flows, sampled])
        return flows, _batch(NatBatch, nat_parts, self._exporters)

    def take_dropped(self) -> Counter:
        """What was refused or dropped since the last call, by (exporter address, reason)."""
        dropped, self._dropped = self._dropped, Counter()
        return dropped

    def _addressed(self, columns: dict) -> dict:
        """The flow columns without records that name neither a source nor a destination."""
        keep = columns["src_addr"].any(axis=1) | columns["dst_addr"].any(axis=1)
        if keep.all():
            return columns
        self._drop_records(columns["exporter"][~keep], "addressless_records")
        return {name: column[keep] for name, column in columns.items()}

    def _drop_records(self, exporter_indexes: np.ndarray, reason: str) -> None:
        for index, count in zip(*np.unique(exporter_indexes, return_counts=True)):
            self._dropped[(self._exporters[int(index)], reason)] += int(count)

    def _estimate_boot_times(self, prepared) -> None:
        """Learn IPFIX exporters' boot times from uptime fields, then stamp the records with them.

        Rows concerned: IPFIX records (no header uptime) without a known systemInitTime, of a
        layout whose times are sysUpTime-relative.
        """
        seen: dict[int, tuple[int, int]] = {}  # domain index -> (smallest export − end, largest end)
        rows_of = []
        for layout, arr, ctx in prepared:
            end_ms = layout.uptime_end(arr)
            if end_ms is None:
                rows_of.append(None)
                continue
            rows = (ctx[:, CTX_UPTIME_MS] < 0) & (ctx[:, CTX_INIT_US] < 0)
            rows_of.append(rows)
            if not rows.any():
                continue
            candidate = ctx[rows, CTX_EXPORT_US] - end_ms[rows] * 1000
            domains = ctx[rows, CTX_DOMAIN]
            ends = end_ms[rows]
            for index in np.unique(domains):
                mine = domains == index
                low, high = int(candidate[mine].min()), int(ends[mine].max())
                if index in seen:
                    low, high = min(low, seen[index][0]), max(high, seen[index][1])
                seen[int(index)] = (low, high)
        for index, (low, high) in seen.items():
            domain = self._domain_list[index]
            rebooted = (domain.boot_us >= 0 and high + _REBOOT_SLACK_MS < domain.max_end_ms
                        and low > domain.boot_us + _REBOOT_SLACK_MS * 1000)
            if domain.boot_us < 0 or rebooted:
                domain.boot_us, domain.max_end_ms = low, high
            else:
                domain.boot_us, domain.max_end_ms = min(domain.boot_us, low), max(domain.max_end_ms, high)
        if not seen:
            return
        boot = np.array([d.boot_us for d in self._domain_list], dtype=np.int64)
        for (_, _, ctx), rows in zip(prepared, rows_of):
            if rows is not None and rows.any():
                ctx[rows, CTX_INIT_US] = boot[ctx[rows, CTX_DOMAIN]]

    def expire(self, now: float) -> None:
        """Drop held data sets older than ``pending_ttl``."""
        self._next_expiry = now + 1.0
        for domain in self._domain_list:
            for tid in list(domain.pending):
                kept = []
                for held in domain.pending[tid]:
                    if now - held[0] < self.pending_ttl:
                        kept.append(held)
                    else:
                        self._unhold(domain, tid, held)
                        self.stats["expired_pending_records"] += 1
                if kept:
                    domain.pending[tid] = kept
                else:
                    del domain.pending[tid]

    def snapshot(self) -> list[tuple]:
        """What ``export_state`` saves, copied cheaply (templates are immutable): take it under the
        lock that guards ``feed``, encode it outside (``encode_state``)."""
        return [(d.key, d.rate, dict(d.samplers), d.init_us, d.last_sequence, d.last_records, d.average,
                 d.boot_us, d.max_end_ms, [t for t, _ in d.templates.values()]) for d in self._domain_list]

    @staticmethod
    def encode_state(snapshot: list[tuple]) -> bytes:
        domains = []
        for key, rate, samplers, init_us, sequence, records, average, boot_us, max_end_ms, templates in snapshot:
            domains.append({
                "exporter": key[0], "version": key[1], "domain": key[2],
                "rate": rate, "samplers": [[k, v] for k, v in samplers.items()], "init_us": init_us,
                "last_sequence": sequence, "last_records": records, "average": average,
                "boot_us": boot_us, "max_end_ms": max_end_ms,
                "templates": [{"id": t.template_id, "options": t.options, "fields": [list(f) for f in t.fields]}
                              for t in templates],
            })
        return json.dumps({"format": _STATE_FORMAT, "domains": domains}).encode()

    def export_state(self) -> bytes:
        """Templates, options-derived sampling, boot time estimates and sequence state, as JSON bytes."""
        return self.encode_state(self.snapshot())

    def load_state(self, data: bytes) -> None:
        """Restore what ``export_state`` saved (so templates survive a collector restart)."""
        try:
            state = json.loads(data)
            if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
                raise DecodeError("saved decoder state is not in a format this version reads")
            restored = [self._restored_domain(entry) for entry in state["domains"]]
            for *_, templates in restored:
                for template in templates:
                    if not template.options:
                        self._layout(template.fields)  # fails here, before any state changes
        except DecodeError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError, OverflowError) as error:
            raise DecodeError(f"saved decoder state is unreadable ({error})") from None
        for key, rate, samplers, init_us, sequence, boot, templates in restored:
            try:
                domain = self._domain(*key)
            except StateLimit:
                continue  # saved under larger limits
            domain.rate, domain.samplers, domain.init_us = rate, samplers, init_us
            domain.last_sequence, domain.last_records, domain.average = sequence
            domain.boot_us, domain.max_end_ms = boot
            for template in templates:
                self._learn(domain, template)

    # -- versions -----------------------------------------------------------------------------

    def _feed_v5(self, packet, exporter) -> PacketInfo:
        if len(packet) < 24:
            raise DecodeError(f"NetFlow v5 packet of {len(packet)} bytes is shorter than its 24-byte header")
        _, count, uptime, secs, nsecs, sequence, engine_type, engine_id, sampling = _V5_HEADER.unpack_from(packet)
        end = 24 + 48 * count
        if len(packet) < end:
            raise DecodeError(f"NetFlow v5 packet announces {count} records but holds {(len(packet) - 24) // 48}")
        domain = self._domain(exporter, 5, engine_type << 8 | engine_id)
        interval = sampling & 0x3FFF
        rate = interval or 1
        domain.rate = rate
        export_us = secs * 1_000_000 + nsecs // 1000
        if count:
            queue = self._queue(self._v5_layout)
            queue.chunks.append(packet[24:end])
            queue.counts.append(count)
            queue.contexts.append((domain.exporter_index, domain.index, export_us, uptime, -1, rate))
        lost = self._counted_loss(domain, sequence, count)
        return PacketInfo(5, exporter, domain.key[2], sequence, secs + nsecs / 1e9, count, lost, 0, 0,
                          interval or None)

    def _feed_v9(self, packet, exporter, received_at) -> PacketInfo:
        if len(packet) < 20:
            raise DecodeError(f"NetFlow v9 packet of {len(packet)} bytes is shorter than its 20-byte header")
        _, _, uptime, secs, sequence, source_id = _V9_HEADER.unpack_from(packet)
        domain = self._domain(exporter, 9, source_id)
        state = _Packet((domain.exporter_index, domain.index, secs * 1_000_000, uptime, -1, domain.rate))
        info = PacketInfo(9, exporter, source_id, sequence, float(secs), 0, 0, 0, 0, None)
        self._read_sets(packet, 20, len(packet), domain, state, info, received_at, ipfix=False)
        info.lost = self._packet_loss(domain, sequence, state.records + state.options_records)
        return _filled(info, state)

    def _feed_ipfix(self, packet, exporter, received_at) -> PacketInfo:
        if len(packet) < 16:
            raise DecodeError(f"IPFIX message of {len(packet)} bytes is shorter than its 16-byte header")
        _, length, secs, sequence, observation_domain = _IPFIX_HEADER.unpack_from(packet)
        if length < 16 or length > len(packet):
            raise DecodeError(f"IPFIX message length {length} does not fit the {len(packet)} bytes received")
        domain = self._domain(exporter, 10, observation_domain)
        state = _Packet((domain.exporter_index, domain.index, secs * 1_000_000, -1, domain.init_us, domain.rate))
        info = PacketInfo(10, exporter, observation_domain, sequence, float(secs), 0, 0, 0, 0, None)
        self._read_sets(packet, 16, length, domain, state, info, received_at, ipfix=True)
        if domain.uncounted:
            lost = 0
            self._remember(domain, sequence, state.records + state.options_records)
        else:
            lost = self._counted_loss(domain, sequence, state.records + state.options_records)
        domain.uncounted = state.pending > 0
        info.lost = lost
        return _filled(info, state)

    def _read_sets(self, packet, pos, end, domain, state, info, received_at, ipfix: bool) -> None:
        template_set, options_set = (2, 3) if ipfix else (0, 1)
        try:
            while end - pos >= 4:
                set_id, length = _SET_HEADER.unpack_from(packet, pos)
                if length == 0 and not any(packet[pos + 4:end]):
                    pos = end  # padding: zeros, or an empty set header then zeros, to the end of the message
                    break
                if length < 4:
                    raise DecodeError(f"set {set_id} has length {length}, less than its own header")
                if pos + length > end:
                    raise DecodeError(f"set {set_id} of {length} bytes runs past the end of the packet")
                body, pos = pos + 4, pos + length
                if set_id == template_set or set_id == options_set:
                    options = set_id == options_set
                    raw = bytes(packet[body:pos])
                    seen = domain.template_sets.get(options)
                    if seen is not None and seen[0] == raw:
                        parsed = seen[1]  # the usual refresh: the same set again, already parsed
                    else:
                        parsed = (parse_ipfix_templates(packet, body, pos, options) if ipfix
                                  else parse_v9_templates(packet, body, pos, options))
                        domain.template_sets[options] = (raw, parsed)
                    for item in parsed:
                        state.templates += 1
                        if isinstance(item, Withdrawal):
                            self._withdraw(domain, item)
                        elif (known := domain.templates.get(item.template_id)) is None or known[0] is not item:
                            state.records += self._learn(domain, item)
                elif set_id >= 256:
                    self._data_set(domain, set_id, packet[body:pos], state, received_at, hold=True)
            if ipfix and pos != end and any(packet[pos:end]):
                raise DecodeError(f"IPFIX message ends with {end - pos} bytes that are not a set")
        except DecodeError as error:
            if state.records or state.templates or state.options_records:
                error.info = _filled(info, state)
            raise

    # -- sets ---------------------------------------------------------------------------------

    def _data_set(self, domain, tid, body: bytes, state, received_at, hold: bool) -> None:
        known = domain.templates.get(tid)
        if known is None:
            if hold:
                self._hold(domain, tid, body, state.context, received_at)
                state.pending += 1
            return
        template, layout = known
        if template.options:
            self._options_data(domain, template, body, state)
            return
        uniform = layout.uniform(body) if layout.variable else None
        if uniform:
            spec, count = uniform
            layout = self._layout(spec)
            data = body[:count * layout.record_length]
        elif layout.variable:
            data, count = layout.compact(body, 0, len(body))
        else:
            count = len(body) // layout.record_length
            data = body[:count * layout.record_length] if count * layout.record_length != len(body) else body
        if not count:
            return
        if layout.sampling_fields:
            rate = layout.last_rate(data[-layout.record_length:])
            if rate:
                domain.rate = state.rate = rate
        queue = self._queue(layout)
        queue.chunks.append(data)
        queue.counts.append(count)
        queue.contexts.append(state.context)
        state.records += count

    def _options_data(self, domain, template, body, state) -> None:
        records, _ = walk_records(body, 0, len(body), template.fields)
        for record in records:
            values = {f: int.from_bytes(value, "big") for f, enterprise, value in record
                      if not enterprise and f in ie.OPTIONS_ELEMENTS and 0 < len(value) <= 8}
            rate = rate_from(values)
            if rate:
                sampler = values.get(ie.SAMPLER_ID, values.get(ie.SELECTOR_ID))
                if sampler is not None:
                    domain.samplers[sampler] = rate
                domain.rate = state.rate = rate
            if ie.SYSTEM_INIT_TIME_MILLISECONDS in values:
                domain.init_us = _init_us(values[ie.SYSTEM_INIT_TIME_MILLISECONDS])
        state.options_records += len(records)
        if records:
            exporter_index, index, export_us, uptime, init_us, _ = state.context
            if domain.key[1] == 10:
                init_us = domain.init_us
            state.context = (exporter_index, index, export_us, uptime, init_us, domain.rate)

    def _learn(self, domain, template: Template) -> int:
        """Store a template; decode data held for it; return how many records that released."""
        if len(template.fields) > self.limits.fields_per_template:
            self._dropped[(domain.key[0], "refused_templates_too_long")] += 1
            return 0
        old = domain.templates.get(template.template_id)
        growth = len(template.fields) - (len(old[0].fields) if old else 0)
        if ((old is None and len(domain.templates) >= self.limits.templates_per_domain)
                or self._field_counts[domain.key[0]] + growth > self.limits.fields_per_exporter):
            self._dropped[(domain.key[0], "refused_templates")] += 1
            return 0
        layout = None if template.options else self._layout(template.fields)
        domain.templates[template.template_id] = (template, layout)
        self._field_counts[domain.key[0]] += growth
        held = domain.pending.pop(template.template_id, None)
        if not held:
            return 0
        released = 0
        for entry in held:
            self._unhold(domain, template.template_id, entry)
            _, body, context = entry
            replay = _Packet(context)
            try:
                self._data_set(domain, template.template_id, body, replay, entry[0], hold=False)
            except (DecodeError, struct.error, IndexError, ValueError, OverflowError):
                self.stats["malformed_pending_sets"] += 1
                continue
            released += replay.records
        self.stats["held_records"] += released
        return released

    def _withdraw(self, domain, withdrawal: Withdrawal) -> None:
        if withdrawal.template_id is not None:
            tids = [withdrawal.template_id] if withdrawal.template_id in domain.templates else []
        else:
            tids = [t for t, (template, _) in domain.templates.items() if template.options == withdrawal.options]
        for tid in tids:
            template, _ = domain.templates.pop(tid)
            self._field_counts[domain.key[0]] -= len(template.fields)

    def _hold(self, domain, tid, body, context, received_at) -> None:
        key = (domain.index, tid)
        size = len(body)
        if not size:
            return  # an empty set holds no record
        if (self._held_bytes.get(key, 0) + size > self.max_pending_bytes
                or self.stats["held_bytes"] + size > self.max_total_pending_bytes):
            self.stats["dropped_pending_sets"] += 1
            return
        domain.pending.setdefault(tid, []).append((received_at, body, context))
        self._held_bytes[key] = self._held_bytes.get(key, 0) + size
        self.stats["held_sets"] += 1
        self.stats["held_bytes"] += size

    def _unhold(self, domain, tid, entry) -> None:
        key = (domain.index, tid)
        left = self._held_bytes.pop(key, 0) - len(entry[1])
        if left > 0:
            self._held_bytes[key] = left
        self.stats["held_sets"] -= 1
        self.stats["held_bytes"] -= len(entry[1])

    # -- sequence numbers ---------------------------------------------------------------------

    def _counted_loss(self, domain, sequence, records) -> int:
        """Loss where the sequence number counts records (v5 flows, IPFIX data records)."""
        if domain.last_sequence is None:
            self._remember(domain, sequence, records)
            return 0
        expected = (domain.last_sequence + domain.last_records) & 0xFFFFFFFF
        gap = (sequence - expected) & 0xFFFFFFFF
        if gap >= 1 << 31:
            if (expected - sequence) & 0xFFFFFFFF > _REORDER_WINDOW:
                self._remember(domain, sequence, records)
            return 0
        self._remember(domain, sequence, records)
        return gap

    def _packet_loss(self, domain, sequence, records) -> int:
        """Loss where the sequence number counts export packets (NetFlow v9), in estimated flows."""
        previous, average = domain.last_sequence, domain.average
        domain.last_records = 1
        if records:  # packets of templates only would drag the average of flows per packet down
            domain.average = float(records) if not average else 0.875 * average + 0.125 * records
        if previous is None:
            domain.last_sequence = sequence
            return 0
        gap = (sequence - previous - 1) & 0xFFFFFFFF
        if gap >= 1 << 31:
            if (previous - sequence) & 0xFFFFFFFF > _REORDER_WINDOW:
                domain.last_sequence = sequence
            return 0
        domain.last_sequence = sequence
        return round(gap * (average or records))

    @staticmethod
    def _remember(domain, sequence, records) -> None:
        domain.last_sequence = sequence
        domain.last_records = records

    # -- registries ---------------------------------------------------------------------------

    def _domain(self, exporter: str, version: int, number: int) -> _Domain:
        key = (exporter, version, number)
        domain = self._domains.get(key)
        if domain is None:
            if self._domain_counts[exporter] >= self.limits.domains_per_exporter:
                self._dropped[(exporter, StateLimit.reason)] += 1
                raise StateLimit(f"exporter {exporter} already has {self._domain_counts[exporter]} observation "
                                 f"domains, the most allowed; domain {number} is ignored")
            self._domain_counts[exporter] += 1
            index = self._exporter_index.get(exporter)
            if index is None:
                index = self._exporter_index[exporter] = len(self._exporters)
                self._exporters.append(exporter)
            domain = self._domains[key] = _Domain(key, len(self._domain_list), index)
            self._domain_list.append(domain)
        return domain

    def _layout(self, spec: tuple) -> Layout:
        layout = self._layouts.get(spec)
        if layout is None:
            layout = Layout(spec)
            if len(self._layouts) < _MAX_CACHED_LAYOUTS:  # a flood of odd templates must not grow it forever
                self._layouts[spec] = layout
        return layout

    def _queue(self, layout: Layout) -> _Queue:
        queue = self._queues.get(layout)
        if queue is None:
            queue = self._queues[layout] = _Queue()
        return queue

    @staticmethod
    def _restored_domain(entry: dict):
        key = (str(entry["exporter"]), int(entry["version"]), int(entry["domain"]))
        if key[1] not in (5, 9, 10) or not 0 <= key[2] < 2**32:
            raise DecodeError(f"saved decoder state names version {key[1]} domain {key[2]}")
        templates = []
        for t in entry["templates"]:
            spec = tuple((int(f), int(length), int(enterprise)) for f, length, enterprise in t["fields"])
            tid = int(t["id"])
            if (not 256 <= tid <= 65535 or not spec
                    or any(not (0 <= f <= 0xFFFF and 0 <= n <= 0xFFFF and 0 <= e < 2**32) for f, n, e in spec)):
                raise DecodeError(f"saved decoder state holds an invalid template {tid}")
            if sum(length for _, length, _ in spec) == 0:
                raise DecodeError(f"saved decoder state holds template {tid} of length 0")
            templates.append(Template(tid, spec, bool(t["options"])))
        samplers = {int(k) & 0xFFFFFFFFFFFFFFFF: _rate(v) for k, v in entry["samplers"]}
        sequence = entry["last_sequence"]
        average = float(entry["average"])
        if not 0 <= average <= 65535:
            raise DecodeError(f"saved decoder state holds an average of {average} records per packet")
        sequence = (None if sequence is None else int(sequence) & 0xFFFFFFFF,
                    int(entry["last_records"]) & 0xFFFFFFFF, average)
        boot = (int(entry.get("boot_us", -1)), int(entry.get("max_end_ms", -1)))
        if not (-1 <= boot[0] < 2**62 and -1 <= boot[1] < 2**32):
            raise DecodeError(f"saved decoder state holds a boot time estimate out of range {boot}")
        return key, _rate(entry["rate"]), samplers, _init_us(int(entry["init_us"]) // 1000), sequence, boot, templates


def _rate(value) -> int:
    return min(max(1, int(value)), 2**31 - 1)


def _init_us(milliseconds: int) -> int:
    """systemInitTimeMilliseconds in µs, or -1 when it cannot be a time (so that columns stay in int64)."""
    return milliseconds * 1000 if 0 <= milliseconds < 2**50 else -1


def _filled(info: PacketInfo, state: _Packet) -> PacketInfo:
    info.records = state.records
    info.templates = state.templates
    info.pending = state.pending
    info.sampling_rate = state.rate
    return info


def _batch(kind, parts: list[dict], exporters: list[str]):
    if not parts:
        return kind(exporters=list(exporters))
    columns = {}
    for f in dataclass_fields(kind):
        if f.name != "exporters":
            columns[f.name] = np.concatenate([p[f.name] for p in parts]).astype(f.metadata["dtype"], copy=False)
    return kind(exporters=list(exporters), **columns)
