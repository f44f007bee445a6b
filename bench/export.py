"""Export speed on an existing database: one reader against two, over the same days.

Times ``write_csv`` (the export the panel, the worker and the CLI run) over the last ``--days``
days before ``--end`` for every flow of ``--ip``, first with one connection, then with the
second reader, and checks that both files have the same SHA-256. Meant for a database kept by
another benchmark, e.g. one with 1.67M flows a day:

    .venv/bin/python bench/analytics.py --flows 50000000 --days 30 --keep
    .venv/bin/python bench/export.py postgresql://postgres@127.0.0.1:5432/ispflow_bench_XXXX --days 4
"""
from __future__ import annotations

import argparse
import ipaddress
import tempfile
import time
from datetime import datetime, timedelta, timezone

from ispflow.database import raw_connection
from ispflow.search.criteria import Criteria
from ispflow.search.export import write_csv


def timed_export(url: str, criteria: Criteria, two: bool) -> tuple[int, float, str]:
    conn = raw_connection(url)
    try:
        with tempfile.TemporaryFile() as out:
            began = time.perf_counter()
            result = write_csv(conn, criteria, out, zone_name="UTC",
                               connect=(lambda: raw_connection(url)) if two else None)
            seconds = time.perf_counter() - began
        conn.rollback()
    finally:
        conn.close()
    return result.rows, seconds, result.sha256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--end", default="2026-05-31", help="the export ends at this UTC midnight")
    parser.add_argument("--ip", default="100.64.0.0/16")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    end = datetime.fromisoformat(args.end).replace(tzinfo=timezone.utc)
    criteria = Criteria(start=end - timedelta(days=args.days), end=end, case_ref="bench",
                        ip=ipaddress.ip_network(args.ip))
    hashes = set()
    print("| readers | rows | seconds | rows/s |\n|---|---:|---:|---:|")
    for two in (False, True):
        for _ in range(args.runs):
            rows, seconds, digest = timed_export(args.url, criteria, two)
            hashes.add(digest)
            print(f"| {'two' if two else 'one'} | {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} |")
    print("same file both ways" if len(hashes) == 1 else f"FILES DIFFER: {sorted(hashes)}")


if __name__ == "__main__":
    main()
