"""Decoded records in columns: what the decoders produce and the writer stores.

The collector never builds one Python object per flow. Decoders append packets' records to
these column batches (numpy arrays, one entry per record) and the writer turns a whole batch
into one binary COPY. Addresses are 16-byte rows: IPv4 in the first 4 bytes with family 4,
IPv6 in all 16 with family 6. Times are microseconds since the Unix epoch, UTC. Optional
numeric fields use -1 for "not exported".
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

ABSENT = -1


def _column(dtype, width=None):
    shape = (0,) if width is None else (0, width)
    return field(default_factory=lambda: np.zeros(shape, dtype=dtype), metadata={"dtype": dtype, "width": width})


@dataclass
class FlowBatch:
    exporter: np.ndarray = _column(np.int32)       # index into ``exporters``
    ts_start: np.ndarray = _column(np.int64)       # µs since epoch, UTC
    ts_end: np.ndarray = _column(np.int64)
    family: np.ndarray = _column(np.uint8)         # 4 or 6
    src_addr: np.ndarray = _column(np.uint8, 16)
    dst_addr: np.ndarray = _column(np.uint8, 16)
    src_port: np.ndarray = _column(np.int32)
    dst_port: np.ndarray = _column(np.int32)
    protocol: np.ndarray = _column(np.int16)
    tcp_flags: np.ndarray = _column(np.int16)      # -1 when not exported
    bytes: np.ndarray = _column(np.int64)          # as counted by the exporter (unscaled)
    packets: np.ndarray = _column(np.int64)
    in_if: np.ndarray = _column(np.int64)          # -1 when not exported
    out_if: np.ndarray = _column(np.int64)
    sampling_rate: np.ndarray = _column(np.int32)  # 1 when unsampled
    src_as: np.ndarray = _column(np.int64)         # -1 when not exported
    dst_as: np.ndarray = _column(np.int64)
    # The translation a NAT device reports inside the flow record (MikroTik, Cisco ASA NSEL):
    # family 0 where the record has none for that side; ports -1 when not exported.
    post_nat_src_family: np.ndarray = _column(np.uint8)
    post_nat_src_addr: np.ndarray = _column(np.uint8, 16)
    post_nat_dst_family: np.ndarray = _column(np.uint8)
    post_nat_dst_addr: np.ndarray = _column(np.uint8, 16)
    post_nat_src_port: np.ndarray = _column(np.int32)
    post_nat_dst_port: np.ndarray = _column(np.int32)
    exporters: list[str] = field(default_factory=list)  # exporter addresses, as text

    def __len__(self) -> int:
        return len(self.ts_start)


@dataclass
class NatBatch:
    exporter: np.ndarray = _column(np.int32)
    ts: np.ndarray = _column(np.int64)             # µs since epoch, UTC
    ts_end: np.ndarray = _column(np.int64)         # -1 when not exported
    event: np.ndarray = _column(np.int16)          # IPFIX natEvent code (RFC 8158)
    protocol: np.ndarray = _column(np.int16)       # -1 when not exported
    family: np.ndarray = _column(np.uint8)         # of the private (inside) address
    private_addr: np.ndarray = _column(np.uint8, 16)
    private_port: np.ndarray = _column(np.int32)   # -1 when not exported
    public_family: np.ndarray = _column(np.uint8)
    public_addr: np.ndarray = _column(np.uint8, 16)
    public_port: np.ndarray = _column(np.int32)
    port_block_start: np.ndarray = _column(np.int32)
    port_block_end: np.ndarray = _column(np.int32)
    dst_family: np.ndarray = _column(np.uint8)     # 0 when no destination was exported
    dst_addr: np.ndarray = _column(np.uint8, 16)
    dst_port: np.ndarray = _column(np.int32)
    exporters: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)


def concat(batches):
    """One batch of the same kind from several (exporter indexes remapped)."""
    batches = [b for b in batches if len(b)]
    if not batches:
        return None
    kind = type(batches[0])
    exporters: list[str] = []
    position: dict[str, int] = {}
    remapped = []
    for batch in batches:
        mapping = np.array([position.setdefault(a, len(position)) for a in batch.exporters] or [0], dtype=np.int32)
        remapped.append(mapping[batch.exporter] if len(batch.exporters) else batch.exporter)
    exporters = list(position)
    values = {}
    for f in fields(kind):
        if f.name == "exporters":
            continue
        if f.name == "exporter":
            values[f.name] = np.concatenate(remapped)
        else:
            values[f.name] = np.concatenate([getattr(b, f.name) for b in batches])
    return kind(exporters=exporters, **values)

