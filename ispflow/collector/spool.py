"""A bounded, ordered on-disk queue of batches the database could not take.

While the database is unreachable the collector keeps receiving: each batch is written here
as one ``.npz`` file (numpy columns plus a JSON header), and replayed oldest first when the
database is back, so every flow is stored once and in order. Files appear atomically (written
under a temporary name, then renamed), so a crash never leaves half a batch to replay.
"""
from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from .batches import FlowBatch, NatBatch
from .enrich import EnrichedFlows

log = logging.getLogger(__name__)


def pack(item) -> tuple[str, dict[str, np.ndarray], dict]:
    """(kind, arrays, header) of an EnrichedFlows or a NatBatch."""
    if isinstance(item, EnrichedFlows):
        arrays = {f.name: getattr(item.flows, f.name) for f in fields(FlowBatch) if f.name != "exporters"}
        subscriber, subscribers = _referenced(item.subscriber, item.subscribers)
        arrays.update(subscriber=subscriber, direction=item.direction)
        return "flows", arrays, {"exporters": item.flows.exporters, "subscribers": subscribers}
    arrays = {f.name: getattr(item, f.name) for f in fields(NatBatch) if f.name != "exporters"}
    return "nat", arrays, {"exporters": item.exporters}


def _referenced(subscriber: np.ndarray, subscribers: list) -> tuple[np.ndarray, list]:
    """The subscriber column renumbered over only the (account, service) pairs it refers to:
    a batch names a few of a directory's many thousand, and its file carries those alone."""
    present = subscriber >= 0
    used, inverse = np.unique(subscriber[present], return_inverse=True)
    column = np.full(len(subscriber), -1, dtype=np.int32)
    column[present] = inverse
    return column, [subscribers[i] for i in used]


def _absent(f, n: int) -> np.ndarray:
    """A column that a spool file written by an earlier version lacks: 'not exported'."""
    shape = (n,) if f.metadata["width"] is None else (n, f.metadata["width"])
    return np.full(shape, 0 if f.metadata["width"] or f.name.endswith("family") else -1, dtype=f.metadata["dtype"])


def unpack(kind: str, arrays: dict[str, np.ndarray], header: dict):
    if kind == "flows":
        n = len(arrays["ts_start"])
        batch = FlowBatch(exporters=header["exporters"],
                          **{f.name: arrays[f.name] if f.name in arrays else _absent(f, n)
                             for f in fields(FlowBatch) if f.name != "exporters"})
        # Files of earlier versions also hold a "status" column: the view derives it now.
        return EnrichedFlows(batch, arrays["subscriber"], arrays["direction"],
                             [tuple(s) for s in header["subscribers"]])
    return NatBatch(exporters=header["exporters"],
                    **{f.name: arrays[f.name] for f in fields(NatBatch) if f.name != "exporters"})


class Spool:
    def __init__(self, directory: str | os.PathLike, max_bytes: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.dropped_batches = 0
        self._lock = threading.Lock()
        self._sequence = 0
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.npz"))

    def __len__(self) -> int:
        return len(self.files())

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files())

    def put(self, item) -> bool:
        """Keep a batch for later; False (and counted) when the spool is full."""
        kind, arrays, header = pack(item)
        buffer = io.BytesIO()
        np.savez(buffer, __header__=np.frombuffer(json.dumps({"kind": kind, **header}).encode(), dtype=np.uint8),
                 **arrays)
        data = buffer.getvalue()
        with self._lock:
            if self.size() + len(data) > self.max_bytes:
                self.dropped_batches += 1
                log.error("spool %s is full (%d bytes): a batch of %d records is lost",
                          self.directory, self.max_bytes, len(item))
                return False
            self._sequence += 1
            name = f"{time.time_ns():020d}-{self._sequence:06d}"
            temporary = self.directory / f"{name}.tmp"
            temporary.write_bytes(data)
            os.replace(temporary, self.directory / f"{name}.npz")
        return True

    def load(self, path: Path):
        with np.load(path, allow_pickle=False) as stored:
            header = json.loads(stored["__header__"].tobytes())
            arrays = {name: stored[name] for name in stored.files if name != "__header__"}
        return unpack(header.pop("kind"), arrays, header)

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
