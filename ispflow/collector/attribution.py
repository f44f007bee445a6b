"""Which subscriber held each flow's address at the flow's start, resolved in bulk.

The whole directory is held in memory (a few hundred thousand assignments is a few MB) and
reloaded periodically, so the collector never asks the database per flow. IPv4 lookups are
vectorised: per prefix length, sorted network keys and ``searchsorted``; IPv6, rarer in
subscriber traffic, goes through a dictionary.

The rule is the directory's (``subscribers`` module): the most specific prefix holding the
address at the moment wins; of two periods of one prefix (which the database refuses) the later
start. Longer prefixes are tried first, and each prefix's periods are kept latest start first.

The subscriber side of a flow: its source when the source is a subscriber's address (the
flow goes ``out`` from the subscriber), else its destination (``in``). An address inside the
ISP's own prefixes but assigned to nobody still gives the direction, without an account.
"""
from __future__ import annotations

import ipaddress
import socket
from collections import defaultdict
from datetime import datetime, timezone

import numpy as np
import sqlalchemy as sa

from .batches import FlowBatch
from .enrich import DIRECTION_IN, DIRECTION_NONE, DIRECTION_OUT

_FOREVER = np.iinfo(np.int64).max
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(moment: datetime | None) -> int:
    if moment is None:
        return _FOREVER
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _ipv4_prefix(text: str) -> tuple[int, int] | None:
    """(network as an integer, length) of an IPv4 prefix, host bits cleared; None for IPv6.

    ``ipaddress`` took ~100 µs a prefix, seconds for a large directory at every reload."""
    address, _, length = text.partition("/")
    if ":" in address:
        return None
    bits = int(length) if length else 32
    if not 0 <= bits <= 32:
        raise ValueError(f"{text!r} is not an IPv4 prefix")
    value = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
    return value & ((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF), bits


_MIX = np.uint64(0x9E3779B97F4A7C15)


class _V6Table:
    """The IPv6 prefixes of one length, searchable in bulk like the IPv4 ones: each network's
    two 64-bit words mixed into one sortable key, matches confirmed on both words."""

    def __init__(self, length: int, rows: list[tuple[bytes, int, int, int]]):
        self.mask_hi, self.mask_lo = self.masks(length)
        words = np.frombuffer(b"".join(net for net, *_ in rows), dtype=">u8").astype(np.uint64).reshape(-1, 2)
        starts = np.array([r[1] for r in rows], dtype=np.int64)
        keys = self._key(words[:, 0], words[:, 1])
        order = np.lexsort((-starts, words[:, 1], words[:, 0], keys))  # latest start first per network
        self.keys, self.hi, self.lo = keys[order], words[order, 0], words[order, 1]
        self.starts = starts[order]
        self.ends = np.array([r[2] for r in rows], dtype=np.int64)[order]
        self.subs = np.array([r[3] for r in rows], dtype=np.int32)[order]

    @staticmethod
    def masks(length: int) -> tuple[np.uint64, np.uint64]:
        """The netmask of a prefix length as two 64-bit words."""
        ones = (1 << 64) - 1
        return (np.uint64(ones ^ ((1 << (64 - min(length, 64))) - 1)),
                np.uint64(ones ^ ((1 << (128 - max(length, 64))) - 1)))

    @classmethod
    def words(cls, network: ipaddress.IPv6Network) -> tuple[tuple, tuple]:
        """((mask hi, mask lo), (network hi, network lo)) of an IPv6 network."""
        value = int(network.network_address)
        return cls.masks(network.prefixlen), (np.uint64(value >> 64), np.uint64(value & ((1 << 64) - 1)))

    @staticmethod
    def _key(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        return hi ^ (lo * _MIX)

    def lookup(self, hi: np.ndarray, lo: np.ndarray, at: np.ndarray, result: np.ndarray) -> None:
        """Fill ``result`` (-1 = not found yet) for the addresses (hi, lo) at moments ``at``."""
        todo = np.nonzero(result < 0)[0]
        if not len(todo):
            return
        net_hi, net_lo = hi[todo] & self.mask_hi, lo[todo] & self.mask_lo
        keys = self._key(net_hi, net_lo)
        first = np.searchsorted(self.keys, keys, "left")
        last = np.searchsorted(self.keys, keys, "right")
        for k in range(int((last - first).max(initial=0))):
            candidate = first + k
            live = candidate < last
            c = np.where(live, candidate, 0)
            hit = (live & (self.hi[c] == net_hi) & (self.lo[c] == net_lo) & (self.starts[c] <= at[todo])
                   & (at[todo] < self.ends[c]) & (result[todo] < 0))
            result[todo[hit]] = self.subs[c[hit]]


class SubscriberDirectory:
    def __init__(self, assignments, own_prefixes=()):
        """``assignments``: iterable of (account, service, prefix, valid_from, valid_to)."""
        self.subscribers: list[tuple[str, str]] = []
        index: dict[tuple[str, str], int] = {}
        v4, v6 = defaultdict(list), defaultdict(list)
        for account, service, prefix, valid_from, valid_to in assignments:
            sub = index.setdefault((account, service), len(index))
            period = (_micros(valid_from), _micros(valid_to), sub)
            parsed = _ipv4_prefix(str(prefix))
            if parsed is not None:
                v4[parsed[1]].append((parsed[0], *period))
            else:
                network = ipaddress.ip_network(str(prefix), strict=False)
                v6[network.prefixlen].append((network.network_address.packed, *period))
        self.subscribers = list(index)
        self._v6_tables = [_V6Table(length, v6[length]) for length in sorted(v6, reverse=True)]
        self._v4 = []
        for length in sorted(v4, reverse=True):
            rows = sorted(v4[length], key=lambda row: (row[0], -row[1]))
            table = np.array(rows, dtype=np.int64).reshape(-1, 4)
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            self._v4.append((np.uint32(mask), table[:, 0].astype(np.uint32), table[:, 1], table[:, 2],
                             table[:, 3].astype(np.int32)))
        self._own4 = []
        self._own6 = []
        for prefix in own_prefixes:
            network = ipaddress.ip_network(prefix, strict=False)
            if network.version == 4:
                self._own4.append((np.uint32(int(network.netmask)), np.uint32(int(network.network_address))))
            else:
                mask, net = _V6Table.words(network)
                self._own6.append((mask, net))

    @classmethod
    def load(cls, conn, own_prefixes=()) -> "SubscriberDirectory":
        rows = conn.execute(sa.text(
            "select account, service, prefix::text, valid_from, valid_to from ispflow.ip_assignments"
        )).all()
        return cls(rows, own_prefixes)

    def __len__(self) -> int:
        return sum(len(keys) for _, keys, *_ in self._v4) + sum(len(t.keys) for t in self._v6_tables)

    # --- lookups --------------------------------------------------------------------------
    def lookup(self, family: np.ndarray, addr: np.ndarray, when: np.ndarray) -> np.ndarray:
        found = np.full(len(family), -1, dtype=np.int32)
        is4 = family == 4
        if self._v4 and is4.any():
            rows = np.nonzero(is4)[0]
            keys = addr[rows, :4].copy().view(">u4").reshape(-1).astype(np.uint32)
            at = when[rows]
            result = np.full(len(rows), -1, dtype=np.int32)
            for mask, nets, starts, ends, subs in self._v4:
                todo = np.nonzero(result < 0)[0]
                if not len(todo):
                    break
                masked = keys[todo] & mask
                lo = np.searchsorted(nets, masked, "left")
                hi = np.searchsorted(nets, masked, "right")
                for k in range(int((hi - lo).max(initial=0))):
                    candidate = lo + k
                    live = candidate < hi
                    c = np.where(live, candidate, 0)
                    hit = live & (starts[c] <= at[todo]) & (at[todo] < ends[c]) & (result[todo] < 0)
                    result[todo[hit]] = subs[c[hit]]
            found[rows] = result
        if self._v6_tables:
            rows = np.nonzero(family == 6)[0]
            if len(rows):
                words = addr[rows].copy().view(">u8").astype(np.uint64)
                result = np.full(len(rows), -1, dtype=np.int32)
                for table in self._v6_tables:
                    table.lookup(words[:, 0], words[:, 1], when[rows], result)
                found[rows] = result
        return found

    def _own(self, family: np.ndarray, addr: np.ndarray) -> np.ndarray:
        own = np.zeros(len(family), dtype=bool)
        if self._own4:
            keys = addr[:, :4].copy().view(">u4").reshape(-1).astype(np.uint32)
            for mask, net in self._own4:
                own |= (family == 4) & ((keys & mask) == net)
        if self._own6:
            words = addr.copy().view(">u8").astype(np.uint64)
            for (mask_hi, mask_lo), (net_hi, net_lo) in self._own6:
                own |= (family == 6) & ((words[:, 0] & mask_hi) == net_hi) & ((words[:, 1] & mask_lo) == net_lo)
        return own

    def attribute(self, batch: FlowBatch):
        """(subscriber index per flow or -1, direction per flow, the subscribers list)."""
        n = len(batch)
        src = self.lookup(batch.family, batch.src_addr, batch.ts_start)
        dst = self.lookup(batch.family, batch.dst_addr, batch.ts_start)
        subscriber = np.where(src >= 0, src, dst).astype(np.int32)
        direction = np.full(n, DIRECTION_NONE, dtype=np.int8)
        direction[dst >= 0] = DIRECTION_IN
        direction[src >= 0] = DIRECTION_OUT
        if self._own4 or self._own6:
            unknown = direction == DIRECTION_NONE
            if unknown.any():
                own_src = self._own(batch.family, batch.src_addr)
                own_dst = self._own(batch.family, batch.dst_addr)
                direction[unknown & own_dst] = DIRECTION_IN
                direction[unknown & own_src] = DIRECTION_OUT
        return subscriber, direction, self.subscribers
