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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.indexes import payloads  # noqa: E402
from tests import synthetic  # noqa: E402
from ispflow.collector.writer import copy_flows  # noqa: E402
from ispflow.database import drop_database, raw_connection, upgrade  # noqa: E402

URL = "postgresql://postgres@127.0.0.1:5432/ispflow_bench_post_nat"
SUBSCRIBERS = ipaddress.ip_network("100.64.0.0/18")
WITH_NAT = synthetic.TemplateSpec(280, synthetic.V9_IPV4.fields + ((225, 4), (226, 4), (227, 2), (228, 2)))


def translated(flow: dict, i: int) -> dict:
    public = f"198.51.100.{i % 64}"
    if ipaddress.ip_address(flow["src"]) in SUBSCRIBERS:
        return dict(flow, public=public, public_port=1024 + i % 60000)
    return dict(flow, dst=public, post_dst=flow["dst"], post_dst_port=flow["dst_port"], dst_port=1024 + i % 60000)


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
        measure("no translation in the records", payloads(args.rows))
        measure("every flow translated", payloads(args.rows, template=WITH_NAT, transform=translated))
    finally:
        drop_database(URL)


if __name__ == "__main__":
    main()
