"""What the collector adds to decoded flows before storing them: subscriber attribution,
direction, connection status and sampling-scaled counters.

Connection status (TCP only, from the cumulative TCP flags of the flow):
- ``failure`` when no ACK was seen (a SYN nobody answered, SYN+RST, a bare RST), or when the
  flags are exactly RST+ACK (the answer of a host refusing the connection);
- ``success`` for every other TCP flow with flags;
- null for other protocols and when the exporter sends no flags.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .batches import FlowBatch

TCP = 6
ACK, RST = 0x10, 0x04

DIRECTION_NONE, DIRECTION_IN, DIRECTION_OUT = 0, 1, 2
STATUS_NONE, STATUS_SUCCESS, STATUS_FAILURE = 0, 1, 2
DIRECTION_NAMES = {DIRECTION_IN: "in", DIRECTION_OUT: "out"}
STATUS_NAMES = {STATUS_SUCCESS: "success", STATUS_FAILURE: "failure"}


@dataclass
class EnrichedFlows:
    """A FlowBatch ready to store: counters scaled, subscriber and status resolved."""

    flows: FlowBatch
    subscriber: np.ndarray          # int32 index into ``subscribers``, -1 for none
    direction: np.ndarray           # int8 DIRECTION_*
    status: np.ndarray              # int8 STATUS_*
    subscribers: list[tuple[str, str]] = field(default_factory=list)  # (account, service)

    def __len__(self) -> int:
        return len(self.flows)


def connection_status(protocol: np.ndarray, tcp_flags: np.ndarray) -> np.ndarray:
    status = np.zeros(len(protocol), dtype=np.int8)
    tcp = (protocol == TCP) & (tcp_flags >= 0)
    failed = tcp & (((tcp_flags & ACK) == 0) | ((tcp_flags & 0xFF) == (RST | ACK)))
    status[tcp] = STATUS_SUCCESS
    status[failed] = STATUS_FAILURE
    return status


def scale_by_sampling(batch: FlowBatch) -> None:
    """Counters as graphs should show them: raw counts × sampling rate (in place)."""
    rate = np.maximum(batch.sampling_rate, 1).astype(np.int64)
    if (rate != 1).any():
        batch.bytes = batch.bytes * rate
        batch.packets = batch.packets * rate


def enrich(batch: FlowBatch, directory) -> EnrichedFlows:
    """Scale counters, stamp the subscriber side's account and service, compute status."""
    scale_by_sampling(batch)
    subscriber, direction, subscribers = directory.attribute(batch)
    return EnrichedFlows(batch, subscriber, direction, connection_status(batch.protocol, batch.tcp_flags), subscribers)
