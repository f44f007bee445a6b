"""What the collector adds to decoded flows before storing them: subscriber attribution,
direction and sampling-scaled counters.

A flow's TCP connection status is not stored: the view ``flow_records`` derives it from the
flow's protocol and flags (migration ``perf_holder_key``, docs/storage.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .batches import FlowBatch

DIRECTION_NONE, DIRECTION_IN, DIRECTION_OUT = 0, 1, 2
DIRECTION_NAMES = {DIRECTION_IN: "in", DIRECTION_OUT: "out"}


@dataclass
class EnrichedFlows:
    """A FlowBatch ready to store: counters scaled, subscriber resolved."""

    flows: FlowBatch
    subscriber: np.ndarray          # int32 index into ``subscribers``, -1 for none
    direction: np.ndarray           # int8 DIRECTION_*
    subscribers: list[tuple[str, str]] = field(default_factory=list)  # (account, service)

    def __len__(self) -> int:
        return len(self.flows)


def scale_by_sampling(batch: FlowBatch) -> None:
    """Counters as graphs should show them: raw counts × sampling rate (in place)."""
    rate = np.maximum(batch.sampling_rate, 1).astype(np.int64)
    if (rate != 1).any():
        batch.bytes = batch.bytes * rate
        batch.packets = batch.packets * rate


def enrich(batch: FlowBatch, directory) -> EnrichedFlows:
    """Scale counters, stamp the subscriber side's account and service."""
    scale_by_sampling(batch)
    subscriber, direction, subscribers = directory.attribute(batch)
    return EnrichedFlows(batch, subscriber, direction, subscribers)
