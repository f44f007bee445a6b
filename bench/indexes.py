"""Which indexes can the flows hypertable afford? COPY rows/s of ispflow's writer into
``ispflow.flows`` with each index set, two writer connections as the collector uses, and the
bytes per row each set costs.

    .venv/bin/python bench/indexes.py [--rows 1000000] [--variants 1,2,4]

Not part of the test suite; figures go to docs/storage.md.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import synthetic  # noqa: E402
from ispflow.collector.attribution import SubscriberDirectory  # noqa: E402
from ispflow.collector.decoder import FlowDecoder  # noqa: E402
from ispflow.collector.enrich import enrich  # noqa: E402
from ispflow.collector.writer import copy_flows, encode  # noqa: E402
from ispflow.database import drop_database, raw_connection, upgrade  # noqa: E402

URL = "postgresql://postgres@127.0.0.1:5432/ispflow_bench_indexes"
VARIANTS = {
    "brin(ts) only": [],
    "(src_addr, ts) + (dst_addr, ts) [until perf]": ["flows_src_addr_ts", "flows_dst_addr_ts"],
    "… + partial (account, ts)": ["flows_src_addr_ts", "flows_dst_addr_ts", "flows_account"],
    "(src_addr) + (dst_addr), deduplicated [now]": ["flows_src_addr", "flows_dst_addr"],
    "bloom brin (src_addr) + (dst_addr) [no CIDR]": ["flows_src_bloom", "flows_dst_bloom"],
}
_BLOOM = "inet_bloom_ops(false_positive_rate = 0.01, n_distinct_per_range = -0.5)) with (pages_per_range = 8)"
DEFINITIONS = {
    "flows_src_addr": "create index flows_src_addr on ispflow.flows (src_addr)",
    "flows_dst_addr": "create index flows_dst_addr on ispflow.flows (dst_addr)",
    "flows_src_addr_ts": "create index flows_src_addr_ts on ispflow.flows (src_addr, ts_start)",
    "flows_dst_addr_ts": "create index flows_dst_addr_ts on ispflow.flows (dst_addr, ts_start)",
    "flows_account": "create index flows_account on ispflow.flows (account, ts_start) where account is not null",
    "flows_src_bloom": f"create index flows_src_bloom on ispflow.flows using brin (src_addr {_BLOOM}",
    "flows_dst_bloom": f"create index flows_dst_bloom on ispflow.flows using brin (dst_addr {_BLOOM}",
}


def payloads(rows: int, batch: int = 50_000, template=synthetic.V9_IPV4, transform=None) -> list[bytes]:
    """Distinct batches (repeated rows would let btree deduplication flatter the indexes).

    ``transform(flow, i)`` may change each flow dict before it is exported with ``template``.
    """
    since = datetime(2025, 1, 1, tzinfo=timezone.utc)
    directory = SubscriberDirectory([(f"A{i}", "fiber", f"100.64.{i // 256}.{i % 256}", since, None)
                                     for i in range(1, 16000)])
    out = []
    for seed in range(rows // batch):
        start = 1_767_225_600.0 + seed * 3600
        flows = synthetic.generate_flows(batch, seed=seed, subscriber_prefix="100.64.0.0/18", start=start,
                                         duration=3600)
        if transform is not None:
            flows = [transform(flow, i) for i, flow in enumerate(flows)]
        exporter = synthetic.Exporter(version=9, boot_time=start - 3600)
        decoder = FlowDecoder()
        for packet in exporter.packets(flows, template, export_time=start + 3700):
            decoder.feed(packet, "192.0.2.1", time.time())
        decoded, _ = decoder.drain()
        enriched = enrich(decoded, directory)
        # Holder ids as a collector would have them; the holders table is not needed to measure indexes.
        out.append(encode(enriched, np.array([1]), np.arange(1, len(enriched.subscribers) + 1)))
    return out


def measure(name: str, indexes: list[str], batches: list[bytes], writers: int = 2) -> None:
    conn = raw_connection(URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("truncate ispflow.flows")
        for index in DEFINITIONS:
            cur.execute(f"drop index if exists ispflow.{index}")
        for index in indexes:
            cur.execute(DEFINITIONS[index])
    work = list(batches)
    lock = threading.Lock()

    def writer():
        c = raw_connection(URL)
        while True:
            with lock:
                if not work:
                    break
                payload = work.pop()
            copy_flows(c, payload)
            c.commit()
        c.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    with conn.cursor() as cur:
        cur.execute("select count(*), hypertable_size('ispflow.flows'), "
                    "(select sum(total_bytes - table_bytes) from chunks_detailed_size('ispflow.flows')) "
                    "from ispflow.flows")
        rows, total, index_bytes = cur.fetchone()
    conn.close()
    print(f"{name:50s} {rows / seconds:>9,.0f} rows/s   {total / rows:6.1f} B/row   indexes {index_bytes / rows:5.1f} B/row",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--variants", help="comma-separated numbers (1-based) of the variants to run")
    args = parser.parse_args()
    upgrade(URL)
    batches = payloads(args.rows)
    print(f"{len(batches) * 50_000:,} rows per variant, 2 writer connections, binary COPY")
    chosen = {int(v) for v in args.variants.split(",")} if args.variants else None
    for number, (name, indexes) in enumerate(VARIANTS.items(), 1):
        if chosen is None or number in chosen:
            measure(name, indexes, batches)
    drop_database(URL)


if __name__ == "__main__":
    main()
