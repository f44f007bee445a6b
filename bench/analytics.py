"""Traffic analytics benchmark: roll-up cost against ingest, and each analytics page's queries.

Generates N flows over D days straight in the database (INSERT … SELECT over
generate_series, one day per statement, indexes in place as at ingest): subscribers in
100.64.0.0/16 (``--subscribers`` addresses, two per account, two services; a household
makes thousands of flows a day, so 50M flows a month is an ISP of a few hundred subscribers), a skewed pool of Internet peers,
the usual mix of service ports, 60 % inbound. Then:

* the load rate (INSERT … SELECT, the last days), and the roll-up job's own rate over the
  whole data set (``rollups.rebuild`` a day per transaction, as the periodic job computes
  hours, up to one hour before the end: the last hour is read from raw flows by the pages, as
  in production); ``--processes 2`` splits the history between two processes to save time;
  what roll-ups cost the collector's ingest is measured by ``bench/ingest.py --rollups``;
* the queries of every analytics page, each run three times (median and worst in ms):
  graphs of a month (network, service, account, address, interface) and of a day, top
  reports of a day and of a month (network-wide and for one account), usage of a month.

    .venv/bin/python bench/analytics.py --flows 5000000 --days 30
    .venv/bin/python bench/analytics.py --flows 50000000 --days 30 --processes 2   # the issue's size

A scratch database ``ispflow_bench_*`` is created on the server of ISPFLOW_TEST_DATABASE_URL
(default postgres@127.0.0.1) and dropped at the end unless --keep.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import secrets
import statistics
import time
from datetime import datetime, timedelta, timezone

from ispflow.analytics import bandwidth, rollups, top, usage
from ispflow.analytics.bandwidth import Scope
from ispflow.database import drop_database, engine_for, upgrade
from ispflow.search.criteria import parse_network

END = datetime(2026, 6, 1, tzinfo=timezone.utc)

# One day of flows: start times spread evenly over the day, everything else from random().
DAY_SQL = """
insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, src_port, dst_port, protocol,
                           tcp_flags, bytes, packets, in_if, out_if, holder, direction)
select ts, ts + (dur * interval '1 second'), 1,
       case when inbound then peer else sub end, case when inbound then sub else peer end,
       case when inbound then port else 30000 + (r1 * 30000)::int end,
       case when inbound then 30000 + (r1 * 30000)::int else port end,
       case when port = 0 then 1 when port in (53, 123, 3478) then 17 else 6 end, 27, bytes, greatest(bytes / 900, 1),
       case when inbound then 1 else 2 end, case when inbound then 2 else 1 end,
       h.id, case when inbound then 'in' else 'out' end
from (
    select ts, k, inbound, r1,
           ('100.64.0.0'::inet + k) as sub,
           ('23.0.0.0'::inet + (power(r2, 3) * 50000)::int) as peer,
           (array[443, 443, 443, 443, 80, 53, 443, 123, 993, 22, 25, 3478, 6881, 1935, 0])[1 + (r3 * 15)::int %% 15] as port,
           (power(r4, 4) * 20000000)::bigint + 60 as bytes,
           least(-ln(1 - r5 * 0.999) * 20, 1800) as dur
    from (
        select %(day)s::timestamptz + (i * (86400.0 / %(n)s)) * interval '1 second' as ts,
               (power(random(), 2) * %(subscribers)s)::int as k, random() < 0.6 as inbound,
               random() as r1, random() as r2, random() as r3, random() as r4, random() as r5
        from generate_series(0, %(n)s - 1) as i
    ) raw
) f
join ispflow.holders h on h.account = 'ACC-' || (k / 2) and h.service = case when k %% 10 = 0 then 'biz' else 'home' end
"""


def load_days(url: str, first_day: datetime, days: int, per_day: int, subscribers: int) -> list[float]:
    """Insert ``days`` days of flows from ``first_day``; the rate (flows/s) of each day."""
    engine = engine_for(url)
    rates = []
    for d in range(days):
        began = time.perf_counter()
        with engine.begin() as conn:
            conn.exec_driver_sql(DAY_SQL, {"day": first_day + timedelta(days=d), "n": per_day,
                                           "subscribers": subscribers})
        rates.append(per_day / (time.perf_counter() - began))
    return rates


def assign_addresses(url: str, subscribers: int, since: datetime) -> None:
    """The subscriber directory the generated flows are stamped from: address k is ACC-(k/2)'s."""
    with engine_for(url).begin() as conn:
        conn.exec_driver_sql(
            "insert into ispflow.ip_assignments (account, service, prefix, valid_from) "
            "select 'ACC-' || (k / 2), case when k %% 10 = 0 then 'biz' else 'home' end, "
            "set_masklen('100.64.0.0'::inet + k, 32)::cidr, %(since)s from generate_series(0, %(n)s) as k",
            {"since": since, "n": subscribers})
        conn.exec_driver_sql("insert into ispflow.holders (account, service) "
                             "select distinct account, service from ispflow.ip_assignments on conflict do nothing")


def settle(url: str) -> None:
    """What autovacuum does to insert-only tables soon after: statistics and the visibility map
    (which lets the graphs' covering indexes answer without reading the table)."""
    engine = engine_for(url).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("vacuum analyze")


def _rebuild(url: str, start: datetime, end: datetime, out) -> None:
    began = time.perf_counter()
    rollups.rebuild(engine_for(url), start, end)
    out.put(time.perf_counter() - began)


def roll_up_history(url: str, start: datetime, end: datetime, processes: int) -> list[float]:
    """Roll up ``[start, end)`` as the job does, day by day, split between ``processes``
    (each takes a contiguous share, as separate job runs would), then set the watermark to
    ``end``; the seconds each process took."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    days = (end - start) / timedelta(days=1)
    cuts = [start + timedelta(days=round(days * i / processes)) for i in range(processes)] + [end]
    workers = [context.Process(target=_rebuild, args=(url, a, b, out)) for a, b in zip(cuts, cuts[1:]) if a < b]
    for worker in workers:
        worker.start()
    seconds = [out.get() for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode:
            raise SystemExit("a roll-up process failed")
    with engine_for(url).begin() as conn:
        conn.exec_driver_sql("insert into ispflow.analytics_watermarks (name, done_until) values (%(n)s, %(u)s) "
                             "on conflict (name) do update set done_until = excluded.done_until",
                             {"n": rollups.WATERMARK, "u": end})
    return seconds


def timed(function, runs: int = 3) -> tuple[float, float]:
    durations = []
    for _ in range(runs):
        began = time.perf_counter()
        function()
        durations.append((time.perf_counter() - began) * 1000)
    return statistics.median(durations), max(durations)


def page_queries(url: str) -> list[tuple[str, float, float]]:
    engine = engine_for(url)
    month, day = (END - timedelta(days=30), END), (END - timedelta(days=1), END)
    busiest = "ACC-1"
    address = parse_network("100.64.0.2")
    cases = [
        ("graph, month, whole network", lambda c: bandwidth.series(c, Scope("network"), *month)),
        ("graph, month, service", lambda c: bandwidth.series(c, Scope("service", service="biz"), *month)),
        ("graph, month, account", lambda c: bandwidth.series(c, Scope("account", account=busiest), *month)),
        ("graph, month, address", lambda c: bandwidth.series(c, Scope("address", network=address), *month)),
        ("graph, month, /22 prefix", lambda c: bandwidth.series(
            c, Scope("address", network=parse_network("100.64.0.0/22")), *month)),
        ("graph, month, exporter interface", lambda c: bandwidth.series(
            c, Scope("interface", exporter_id=1, if_index=1), *month)),
        ("graph, day, whole network", lambda c: bandwidth.series(c, Scope("network"), *day)),
        ("graph, hour, whole network (raw, 1 min)", lambda c: bandwidth.series(
            c, Scope("network"), END - timedelta(hours=1), END)),
    ]
    for by in top.REPORTS:
        for label, period in (("day", day), ("month", month)):
            cases.append((f"top {by}, {label}, network", lambda c, by=by, period=period: top.report(c, by, *period)))
    for by in ("source", "application", "conversation"):
        cases.append((f"top {by}, month, one account",
                      lambda c, by=by: top.report(c, by, *month, account=busiest)))
    cases.append(("usage, month, all accounts", lambda c: usage.monthly_usage(
        c, (END - timedelta(days=1)).date().replace(day=1), timezone.utc)))
    results = []
    with engine.connect() as conn:
        for label, run in cases:
            median, worst = timed(lambda: run(conn), runs=1 if label.startswith("usage") else 3)
            results.append((label, median, worst))
            conn.rollback()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--subscribers", type=int, default=400,
                        help="subscriber addresses (two per account); 50M flows a month is ~4,000 a day each for 400")
    parser.add_argument("--processes", type=int, default=1,
                        help="roll the history up in this many processes (2 halves the wait on 2 cores)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    server = os.environ.get("ISPFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = re.sub(r"/[^/]*$", f"/ispflow_bench_{secrets.token_hex(4)}", server)
    upgrade(url)
    per_day = args.flows // args.days
    try:
        print(f"{args.flows:,} flows over {args.days} days ({per_day:,} a day) into {url.rsplit('/', 1)[1]}")
        assign_addresses(url, args.subscribers, END - timedelta(days=args.days + 1))
        rates = load_days(url, END - timedelta(days=args.days), args.days, per_day, args.subscribers)
        alone = statistics.median(rates[-5:])
        print(f"ingest without roll-ups: {alone:,.0f} flows/s (median of the last 5 days)")

        began = time.perf_counter()
        seconds = roll_up_history(url, END - timedelta(days=args.days), END - timedelta(hours=1), args.processes)
        spent = time.perf_counter() - began
        settle(url)
        print(f"roll-up job over the whole set: {spent:.1f} s in {args.processes} process(es), "
              f"{args.flows / sum(seconds):,.0f} flows/s per process "
              f"(ingest with roll-ups kept up: bench/ingest.py --rollups)")

        print(f"{'page query':<44} {'median ms':>10} {'worst ms':>10}")
        for label, median, worst in page_queries(url):
            print(f"{label:<44} {median:>10.1f} {worst:>10.1f}")
    finally:
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
