"""A typical subscriber's first page of search results, two ways, on a set of generated flows.

    .venv/bin/python bench/first_page.py [--subscribers 16000] [--days 30] [--flows-per-day 8]

Loads the flows the way ``bench/search.py`` does (its generator), then times ``fetch_page``
(20 runs, median and minimum) with the page's rows chosen from ``flows`` and named afterwards
(the code), and with them chosen through the view ``flow_records`` in every branch (the form
the holder key first had; it hashed every holder for each branch).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import search as generator  # noqa: E402  (bench/search.py)
from ispflow.database import drop_database, engine_for, raw_connection, upgrade  # noqa: E402
from ispflow.search import query  # noqa: E402
from ispflow.search.criteria import parse_criteria  # noqa: E402

URL = "postgresql://postgres@127.0.0.1:5432/ispflow_bench_first_page"
NAMED_AFTER = query.page_sql


def through_the_view(criteria, order="newest", cursor=None, size=query.PAGE_SIZE, scope=None):
    """``query.page_sql`` with the view joined in every branch."""
    sql, params = NAMED_AFTER(criteria, order, cursor, size, scope)
    view_columns = ", ".join(f"f.{name}" for name in query.tables.names(query.tables.flow_records))
    sql = (sql.replace(query._FLOW_COLUMNS, view_columns)
           .replace("from ispflow.flows f", "from ispflow.flow_records f").replace("f.ctid", "f.rid")
           .replace(query._NAMED, "p.*, coalesce(e.name, host(e.address)) as exporter")
           .replace("left join ispflow.holders h on h.id = p.holder ", ""))
    return sql, params


def load(args) -> None:
    upgrade(URL)
    db = raw_connection(URL)
    generator.prepare(db, args.subscribers, args.days)
    rng = np.random.default_rng(1)
    for day in range(args.days):
        generator.store_in_postgres(db, generator.day_flows(rng, day, args.subscribers, args.flows_per_day))
    db.autocommit = True
    with db.cursor() as cursor:
        cursor.execute("vacuum analyze ispflow.flows")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=16000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--flows-per-day", type=int, default=8)
    args = parser.parse_args()
    try:
        drop_database(URL)
    except Exception:
        pass
    load(args)
    criteria = parse_criteria({"ip": generator.ip_text(generator.SUBSCRIBER_BASE + generator.TYPICAL),
                               "from": (generator.END - timedelta(days=args.days)).date().isoformat(),
                               "to": generator.END.date().isoformat(), "case_ref": "bench"},
                              zone=ZoneInfo("UTC"), retention_months=120)
    try:
        with engine_for(URL).connect() as conn:
            for label, form in (("named after", NAMED_AFTER), ("view in branches", through_the_view)) * 2:
                query.page_sql = form
                times = []
                for _ in range(20):
                    began = time.perf_counter()
                    rows = query.fetch_page(conn, criteria).rows
                    times.append((time.perf_counter() - began) * 1000)
                print(f"{label:17} {len(rows)} rows: median {statistics.median(times):.2f} ms, "
                      f"minimum {min(times):.2f} ms")
    finally:
        query.page_sql = NAMED_AFTER
        drop_database(URL)


if __name__ == "__main__":
    main()
