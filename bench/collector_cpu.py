"""The collector's own CPU per flow, stage by stage, on one core: decode, attribute, encode, roll up.

On two cores the collector's CPU is taken from PostgreSQL's writers, so every microsecond per
flow here is ingest rate lost. Runs the stages the collector runs on each batch, on the
ingest benchmark's streams (bench/ingest.py ``--shape``):

- decode: ``FlowDecoder.feed`` of every datagram and ``drain`` every 50,000 flows;
- attribute: ``enrich`` (sampling scale, subscriber and direction per flow, connection status)
  against the benchmark's directory (16,384 single-address IPv4 subscribers and one IPv6 /48);
- encode: ``writer.encode``, the binary COPY payload;
- roll up: what the collector's roll-ups cost per flow: ``RollupKeeper.columns`` and ``split``
  per batch, then at the hour's close ``columnar.compute`` over every flow of the hour and the
  binary COPY payloads of its rows (``pgcopy.encode_rows``).

Best of ``--repeat`` runs, microseconds per flow.

    .venv/bin/python bench/collector_cpu.py [--flows 1000000] [--shape many|few] [--repeat 3]
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")   # as `ispflow collector` runs it

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import live_start, stream  # noqa: E402
from ispflow.analytics import columnar  # noqa: E402
from ispflow.collector.attribution import SubscriberDirectory  # noqa: E402
from ispflow.collector.decoder import FlowDecoder  # noqa: E402
from ispflow.collector.enrich import enrich  # noqa: E402
from ispflow.collector.pgcopy import encode_rows  # noqa: E402
from ispflow.collector.rollup_keeper import RollupKeeper  # noqa: E402
from ispflow.collector.writer import encode  # noqa: E402

BATCH = 50_000  # the collector's max_batch


def directory() -> SubscriberDirectory:
    """bench/ingest.py's subscribers: every address of 100.64.0.0/18 an account, and one IPv6 /48."""
    since = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rows = [(f"A{n}", "fiber", f"100.64.{n // 256}.{n % 256}/32", since, None) for n in range(16384)]
    return SubscriberDirectory(rows + [("V6", "fiber", "2001:db8:100::/48", since, None)])


def decoded(packets: list[bytes], t0: float) -> tuple[float, list]:
    decoder, batches, queued = FlowDecoder(), [], 0
    began = time.perf_counter()
    for packet in packets:
        queued += decoder.feed(packet, "127.0.0.1", t0 + 700).records
        if queued >= BATCH:
            batches.append(decoder.drain()[0])
            queued = 0
    batches.append(decoder.drain()[0])
    return time.perf_counter() - began, batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--shape", default="many", choices=("many", "few"))
    parser.add_argument("--version", type=int, default=9, choices=(5, 9, 10))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    t0 = live_start()
    packets = stream(args.flows, args.version, args.shape, t0)
    subscribers = directory()
    ids = np.arange(1, 17, dtype=np.int64)
    best = {"decode": float("inf"), "attribute": float("inf"), "encode": float("inf"), "roll up": float("inf")}
    for _ in range(args.repeat):
        seconds, batches = decoded(packets, t0)
        best["decode"] = min(best["decode"], seconds)
        fresh = copy.deepcopy(batches)
        began = time.perf_counter()
        enriched = [enrich(batch, subscribers) for batch in fresh]
        best["attribute"] = min(best["attribute"], time.perf_counter() - began)
        began = time.perf_counter()
        for item in enriched:
            encode(item, ids, np.arange(len(item.subscribers)))  # holder ids: any will do here
        best["encode"] = min(best["encode"], time.perf_counter() - began)
        keeper = RollupKeeper("", clock=lambda: t0)
        began = time.perf_counter()
        for item in enriched:
            keeper.add(keeper.split(keeper.columns(item, ids))[0])
        held = columnar.FlowColumns.concat(keeper._pending)
        computed = columnar.compute(held, keeper.accounts, keeper.services)
        payloads = [encode_rows(rows.columns) for rows in computed]
        best["roll up"] = min(best["roll up"], time.perf_counter() - began)
    print("roll-up rows: " + ", ".join(f"{rows.table} {len(rows):,}" for rows in computed)
          + f" ({sum(len(p) for p in payloads) / 1e6:.1f} MB of COPY payload)")
    flows = sum(len(b) for b in batches)
    print(f"{flows:,} flows, NetFlow v{args.version}, shape {args.shape}, best of {args.repeat}")
    for stage, seconds in best.items():
        print(f"{stage:<10} {seconds * 1e6 / flows:6.2f} µs/flow")
    print(f"{'total':<10} {sum(best.values()) * 1e6 / flows:6.2f} µs/flow = "
          f"{sum(best.values()) * 1e6 / flows:.2f} CPU-s per million flows")


if __name__ == "__main__":
    main()
