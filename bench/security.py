"""Security view benchmark: a day of flows, its hourly analysis, and the view of the whole day.

Fills a scratch database with one day of ordinary subscriber traffic (generated inside
PostgreSQL, ``--flows`` rows spread over 24 hours and ``--subscribers`` addresses), hides a
telnet scan, an SSH brute force, a beacon and an exfiltration in it, then measures:

* the periodic job's cost: ``analyse_hour`` for each hour of the day (all five detectors,
  geography with a small MMDB file and one unexpected country);
* the security view of the day: what the page and ``ispflow findings --no-analyse`` read
  (``grouped_findings`` and ``coverage`` over the stored findings), best of five;
* that every planted incident was found.

    .venv/bin/python bench/security.py                          # 5M flows, a few minutes
    .venv/bin/python bench/security.py --flows 50000000         # the issue's day (long on 2 cores)

A scratch database ``ispflow_bench_*`` is created on the server of ISPFLOW_TEST_DATABASE_URL
(default postgres@127.0.0.1) and dropped at the end unless --keep.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ispflow.database import drop_database, engine_for, upgrade  # noqa: E402
from ispflow.geoip import GeoIP  # noqa: E402
from tests.sample_flows import flow, insert_flows  # noqa: E402
from ispflow.security import settings as security_settings  # noqa: E402
from ispflow.security.findings import HOUR, analyse_hour, coverage, grouped_findings  # noqa: E402

DAY = datetime(2026, 6, 1, tzinfo=timezone.utc)

ORDINARY_HOUR = """
insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, src_port, dst_port, protocol,
                           tcp_flags, bytes, packets, sampling_rate, holder, direction)
select ts, ts + interval '2 s', 1, '100.64.0.0'::inet + sub, '23.0.0.0'::inet + peer,
       32768 + (g % 28000), (array[443, 443, 80, 53, 443, 993, 22, 8080])[1 + g % 8],
       case when g % 8 = 3 then 17 else 6 end,
       case when g % 8 = 3 then null when g % 40 = 0 then 2 else 27 end,  -- 1 in 40 an unanswered SYN
       400 + (g * 7919) % 200000, 4 + g % 150, 1, h.id, 'out'
from (select g, cast(:hour as timestamptz) + ((hashint8(g)::bigint & 2147483647) % 3600000) * interval '1 millisecond' as ts,
             (g * 2654435761) % :subscribers as sub, (g * 40503) % 200000 as peer
      from generate_series(cast(1 as bigint), :rows) g) s
join ispflow.holders h on h.account = 'ACC-' || s.sub and h.service is null
"""
HOLDERS = """
insert into ispflow.holders (account) select 'ACC-' || n from generate_series(0, :subscribers - 1) n
on conflict do nothing
"""


# Start times are spread by a hash of the row number: a pair of addresses that recurs does so at
# irregular moments, as ordinary traffic does. (Times on a grid made every recurring pair of a
# 50M-flow day a perfect five-minute beacon.)


def planted(rows_hour: datetime) -> list[dict]:
    """The incidents, in hour 12 of the day (the beacon over the six hours before)."""
    found = []
    for i in range(300):
        found.append(flow(rows_hour + timedelta(seconds=i * 5), "100.64.200.1", f"198.19.{i // 200}.{i % 200 + 1}",
                          dst_port=23, tcp_flags=2, bytes=60, packets=1, account="ACC-SCAN", direction="out"))
    for i in range(80):
        found.append(flow(rows_hour + timedelta(seconds=i * 40), "198.51.100.77", "100.64.200.2", dst_port=22,
                          src_port=40000 + i, bytes=3200, packets=22, account="ACC-SSH", direction="in"))
    moment = rows_hour - timedelta(hours=5)
    i = 0
    while moment < rows_hour + HOUR:
        found.append(flow(moment, "100.64.200.3", "192.0.2.200", src_port=41000 + i, bytes=1800, packets=9,
                          account="ACC-BEACON", direction="out"))
        moment += timedelta(seconds=300 + (i % 7) - 3)
        i += 1
    for i in range(6):
        found.append(flow(rows_hour + timedelta(minutes=5 + i * 8), "100.64.200.4", "192.0.2.99",
                          src_port=42000 + i, bytes=500_000_000, packets=400_000, account="ACC-EXFIL",
                          direction="out"))
    for i in range(5):
        found.append(flow(rows_hour + timedelta(minutes=i * 7), "100.64.200.5", "203.0.113.200",
                          src_port=43000 + i, bytes=20_000, account="ACC-GEO", direction="out"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=5_000_000, help="ordinary flows in the day")
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    server = os.environ.get("ISPFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = re.sub(r"/[^/]*$", f"/ispflow_bench_{secrets.token_hex(3)}", server)
    upgrade(url)
    engine = engine_for(url)
    try:
        run(engine, args)
    finally:
        if not args.keep:
            drop_database(url)
        else:
            print(f"kept {url}")


def run(engine, args) -> None:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    per_hour = args.flows // 24
    started = time.monotonic()
    with engine.begin() as conn:   # loaded first, indexed after: the same indexes, built in bulk
        conn.execute(sa.text("drop index ispflow.flows_src_addr"))
        conn.execute(sa.text("drop index ispflow.flows_dst_addr"))
    with engine.begin() as conn:
        conn.execute(sa.text(HOLDERS), {"subscribers": args.subscribers})
    for hour in range(24):
        with engine.begin() as conn:
            conn.execute(sa.text(ORDINARY_HOUR), {"hour": DAY + hour * HOUR, "rows": per_hour,
                                                   "subscribers": args.subscribers})
    with engine.begin() as conn:
        conn.execute(sa.text("set local maintenance_work_mem = '1GB'"))
        conn.execute(sa.text("create index flows_src_addr on ispflow.flows (src_addr)"))
        conn.execute(sa.text("create index flows_dst_addr on ispflow.flows (dst_addr)"))
    incident_hour = DAY + 12 * HOUR
    with engine.connect() as conn:
        insert_flows(conn, planted(incident_hour))
        conn.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("vacuum analyze ispflow.flows"))
        total = conn.execute(sa.text("select count(*) from ispflow.flows")).scalar()
    print(f"loaded {total:,} flows over one day in {time.monotonic() - started:.0f} s "
          f"({args.subscribers:,} subscribers)")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "country.mmdb")
        writer = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
        writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "RU", "names": {"en": "Russia"}}})
        writer.insert_network(IPSet(["23.0.0.0/8"]), {"country": {"iso_code": "US", "names": {"en": "USA"}}})
        writer.to_db_file(path)
        geo = GeoIP(path)
        with engine.begin() as conn:
            security_settings.save(conn, security_settings.SecuritySettings(unexpected_countries=("RU",)))
            thresholds = security_settings.load(conn)
        seconds = []
        for hour in range(24):
            t0 = time.monotonic()
            with engine.begin() as conn:
                analyse_hour(conn, DAY + hour * HOUR, thresholds, geo)
            seconds.append(time.monotonic() - t0)
    print(f"hourly analysis ({per_hour:,} flows an hour): median {statistics.median(seconds):.2f} s, "
          f"max {max(seconds):.2f} s, whole day {sum(seconds):.1f} s")

    view = []
    for _ in range(5):
        t0 = time.monotonic()
        with engine.connect() as conn:
            rows = grouped_findings(conn, DAY, DAY + timedelta(days=1))
            coverage(conn, DAY, DAY + timedelta(days=1), now=DAY + timedelta(days=2))
        view.append(time.monotonic() - t0)
    print(f"security view of the day: {len(rows)} findings in {min(view) * 1000:.1f} ms (best of 5), "
          f"median {statistics.median(view) * 1000:.1f} ms")
    kinds = {(r.kind, str(r.subject)) for r in rows}
    expected = {("scan", "100.64.200.1"), ("bruteforce", "198.51.100.77"), ("beacon", "100.64.200.3"),
                ("outbound", "100.64.200.4"), ("geography", "100.64.200.5")}
    missing = expected - kinds
    print("planted incidents: " + ("all found" if not missing else f"MISSING {sorted(missing)}"))
    others = sorted(kinds - expected)
    print(f"other findings: {len(others)}" + (f" e.g. {others[:5]}" if others else ""))


if __name__ == "__main__":
    main()
