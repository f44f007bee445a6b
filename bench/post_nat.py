"""What keeping the NAT translation of flow records costs per flow: bytes per row of
``ispflow.flows`` (table + indexes, the migrations' indexes) for the same flows stored without a
translation and with one on every flow (a CGNAT MikroTik or ASA: outgoing flows carry their
public source and port, replies their private destination and port).

    .venv/bin/python bench/post_nat.py [--rows 200000]

Not part of the test suite; figures go to docs/storage.md.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys
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

URL = "postgresql://postgres@127.0.0.1:5432/ispflow_bench_post_nat"
SUBSCRIBERS = ipaddress.ip_network("100.64.0.0/18")
WITH_NAT = synthetic.TemplateSpec(280, synthetic.V9_IPV4.fields + ((225, 4), (226, 4), (227, 2), (228, 2)))


def translated(flow: dict, i: int) -> dict:
    public = f"198.51.100.{i % 64}"
    if ipaddress.ip_address(flow["src"]) in SUBSCRIBERS:
        return dict(flow, public=public, public_port=1024 + i % 60000)
    return dict(flow, dst=public, post_dst=flow["dst"], post_dst_port=flow["dst_port"], dst_port=1024 + i % 60000)


def payloads(rows: int, nat: bool, batch: int = 50_000) -> list[bytes]:
    since = datetime(2025, 1, 1, tzinfo=timezone.utc)
    directory = SubscriberDirectory([(f"A{i}", "fiber", f"100.64.{i // 256}.{i % 256}", since, None)
                                     for i in range(1, 16000)])
    out = []
    for seed in range(rows // batch):
        start = 1_767_225_600.0 + seed * 3600
        flows = synthetic.generate_flows(batch, seed=seed, subscriber_prefix=str(SUBSCRIBERS), start=start,
                                         duration=3600)
        if nat:
            flows = [translated(flow, i) for i, flow in enumerate(flows)]
        exporter = synthetic.Exporter(version=9, boot_time=start - 3600)
        decoder = FlowDecoder()
        for packet in exporter.packets(flows, WITH_NAT if nat else synthetic.V9_IPV4, export_time=start + 3700):
            decoder.feed(packet, "192.0.2.1", time.time())
        decoded, _ = decoder.drain()
        out.append(encode(enrich(decoded, directory), np.array([1])))
    return out


def measure(name: str, batches: list[bytes]) -> None:
    conn = raw_connection(URL)
    with conn.cursor() as cur:
        cur.execute("truncate ispflow.flows")
        conn.commit()
        for payload in batches:
            copy_flows(conn, payload)
            conn.commit()
        cur.execute("select count(*), count(post_nat_src_addr) + count(post_nat_dst_addr), "
                    "hypertable_size('ispflow.flows'), "
                    "(select sum(table_bytes) from chunks_detailed_size('ispflow.flows')), "
                    "(select sum(index_bytes) from chunks_detailed_size('ispflow.flows')) from ispflow.flows")
        rows, with_nat, total, table, index = cur.fetchone()
    conn.close()
    print(f"{name:34s} {rows:,} rows ({with_nat:,} translated)   {total / rows:6.1f} B/row   "
          f"table {table / rows:6.1f}   indexes {index / rows:5.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    upgrade(URL)
    try:
        measure("no translation in the records", payloads(args.rows, nat=False))
        measure("every flow translated", payloads(args.rows, nat=True))
    finally:
        drop_database(URL)


if __name__ == "__main__":
    main()
