"""Small builders for collector tests: FlowBatch from readable dicts."""
import ipaddress
from dataclasses import fields
from datetime import datetime, timezone

import numpy as np

from ispflow.collector.batches import FlowBatch

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def micros(moment: str) -> int:
    delta = datetime.fromisoformat(moment.replace("Z", "+00:00")) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def address_row(text: str):
    address = ipaddress.ip_address(text)
    row = np.zeros(16, dtype=np.uint8)
    row[: len(address.packed)] = np.frombuffer(address.packed, dtype=np.uint8)
    return address.version, row


def flow_batch(flows: list[dict], exporter: str = "192.0.2.1") -> FlowBatch:
    """Flows given as dicts with src, dst, start, end and optional counters."""
    n = len(flows)
    batch = FlowBatch(exporters=[exporter])
    batch.exporter = np.zeros(n, dtype=np.int32)
    batch.ts_start = np.array([micros(f["start"]) for f in flows], dtype=np.int64)
    batch.ts_end = np.array([micros(f.get("end", f["start"])) for f in flows], dtype=np.int64)
    families, src, dst = [], [], []
    for f in flows:
        family, s = address_row(f["src"])
        _, d = address_row(f["dst"])
        families.append(family)
        src.append(s)
        dst.append(d)
    batch.family = np.array(families, dtype=np.uint8)
    batch.src_addr = np.array(src, dtype=np.uint8).reshape(n, 16)
    batch.dst_addr = np.array(dst, dtype=np.uint8).reshape(n, 16)
    for name, dtype, default in (
        ("src_port", np.int32, 0), ("dst_port", np.int32, 0), ("protocol", np.int16, 6),
        ("tcp_flags", np.int16, -1), ("bytes", np.int64, 1000), ("packets", np.int64, 10),
        ("in_if", np.int64, -1), ("out_if", np.int64, -1), ("sampling_rate", np.int32, 1),
        ("src_as", np.int64, -1), ("dst_as", np.int64, -1), ("post_nat_src_port", np.int32, -1),
        ("post_nat_dst_port", np.int32, -1),
    ):
        setattr(batch, name, np.array([f.get(name, default) for f in flows], dtype=dtype))
    for side in ("src", "dst"):
        rows = [address_row(f[f"post_nat_{side}"]) if f.get(f"post_nat_{side}") else (0, np.zeros(16, np.uint8))
                for f in flows]
        setattr(batch, f"post_nat_{side}_family", np.array([r[0] for r in rows], dtype=np.uint8))
        setattr(batch, f"post_nat_{side}_addr", np.array([r[1] for r in rows], dtype=np.uint8).reshape(n, 16))
    return batch


def check(batch) -> None:
    """Raise AssertionError unless every column of a decoded batch has the batch's length and dtype."""
    n = len(batch)
    for f in fields(batch):
        if f.name == "exporters":
            continue
        column = getattr(batch, f.name)
        assert column.dtype == f.metadata["dtype"], f"{f.name}: dtype {column.dtype}"
        expected = (n,) if f.metadata["width"] is None else (n, f.metadata["width"])
        assert column.shape == expected, f"{f.name}: shape {column.shape}, expected {expected}"
    if n:
        assert 0 <= int(batch.exporter.min()) and int(batch.exporter.max()) < len(batch.exporters)
