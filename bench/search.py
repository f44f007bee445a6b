"""Search and export benchmark: ispflow on TimescaleDB against nfdump over nfcapd files.

Generates one realistic data set (subscribers behind an ISP's /16, each with flows to a pool
of Internet peers every day, one heavy subscriber among them), stores it twice, the same
flows both ways: into ispflow's flows hypertable (COPY into a staging table, then one
INSERT … SELECT per day, indexes in place as at ingest) and as NetFlow v5 packets to a local
``nfcapd``. Then asks both the same questions and prints the figures side by side:

* one subscriber over 30 and 180 days: first page (100 newest) and the full result;
* a CIDR /24 over 30 days;
* export rows/s and the exporting process's peak memory (a small and a large export, to show
  that memory stays flat).

    .venv/bin/python bench/search.py                 # default size, a few minutes on 2 cores
    .venv/bin/python bench/search.py --big           # 4x the flows (2x subscribers, 2x each)
    .venv/bin/python bench/search.py --subscribers 500 --days 30   # quick look
    .venv/bin/python bench/search.py --big --ordered   # again after closed days are put in subscriber order
    .venv/bin/python bench/search.py --big --cold      # every timed query from an empty page cache (root)

A scratch database ``ispflow_bench_*`` is created on the server of ISPFLOW_TEST_DATABASE_URL
(default postgres@127.0.0.1) and dropped at the end unless --keep.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np

from ispflow.database import drop_database, engine_for, raw_connection, upgrade
from ispflow.retention.chunk_order import order_closed
from ispflow.search.criteria import parse_criteria
from ispflow.search.export import write_csv
from ispflow.search.query import all_rows, fetch_page, totals

SUBSCRIBER_BASE = int.from_bytes(bytes([100, 64, 0, 0]), "big")   # 100.64.0.0/16
PEER_BASE = int.from_bytes(bytes([23, 0, 0, 0]), "big")
END = datetime(2026, 6, 1, tzinfo=timezone.utc)
HEAVY = 1          # subscriber index with 50x the flows
TYPICAL = 7

# (dst port, protocol, weight): what subscribers talk to
SERVICES = np.array([(443, 6, 40), (80, 6, 10), (53, 17, 12), (443, 17, 8), (123, 17, 2), (993, 6, 2),
                     (22, 6, 2), (25, 6, 1), (3478, 17, 3), (5222, 6, 2), (8080, 6, 2), (0, 1, 3)])

V5_RECORD = np.dtype([("src", ">u4"), ("dst", ">u4"), ("nexthop", ">u4"), ("in_if", ">u2"), ("out_if", ">u2"),
                      ("packets", ">u4"), ("bytes", ">u4"), ("first", ">u4"), ("last", ">u4"),
                      ("src_port", ">u2"), ("dst_port", ">u2"), ("pad1", "u1"), ("tcp_flags", "u1"),
                      ("protocol", "u1"), ("tos", "u1"), ("src_as", ">u2"), ("dst_as", ">u2"),
                      ("src_mask", "u1"), ("dst_mask", "u1"), ("pad2", ">u2")])
assert V5_RECORD.itemsize == 48


def ip_text(value: int) -> str:
    return socket.inet_ntoa(int(value).to_bytes(4, "big"))


def day_flows(rng, day: int, subscribers: int, per_day: int) -> dict:
    """One day's flows as numpy columns, sorted by start time."""
    counts = np.full(subscribers, per_day)
    counts[HEAVY] = per_day * 50
    sub = np.repeat(np.arange(subscribers), counts)
    n = len(sub)
    day_start_ms = int((END - timedelta(days=day + 1)).timestamp() * 1000)
    start = day_start_ms + rng.integers(0, 86_400_000, n)
    order = np.argsort(start, kind="stable")
    sub, start = sub[order], start[order]
    duration = np.minimum(rng.exponential(4000, n).astype(np.int64), 300_000)
    weights = SERVICES[:, 2] / SERVICES[:, 2].sum()
    service = rng.choice(len(SERVICES), n, p=weights)
    port, protocol = SERVICES[service, 0], SERVICES[service, 1]
    outbound = rng.random(n) < 0.5
    subscriber_ip = SUBSCRIBER_BASE + sub
    peer_ip = PEER_BASE + rng.integers(0, 5000, n) * 97
    ephemeral = rng.integers(32768, 61000, n)
    ephemeral[protocol == 1] = 0
    size = np.maximum(rng.lognormal(8, 2, n).astype(np.int64), 40)
    return {
        "start": start, "end": start + duration,
        "src": np.where(outbound, subscriber_ip, peer_ip), "dst": np.where(outbound, peer_ip, subscriber_ip),
        "src_port": np.where(outbound, ephemeral, port), "dst_port": np.where(outbound, port, ephemeral),
        "protocol": protocol, "bytes": np.minimum(size, 2**32 - 1), "packets": size // 900 + 1,
        "sub": sub, "outbound": outbound, "day_start_ms": day_start_ms,
    }


def prepare(dbapi, subscribers: int, days: int) -> None:
    """The exporter, the subscribers' assignments and holders, and the staging table for ``store_in_postgres``."""
    with dbapi.cursor() as cursor:
        cursor.execute("insert into ispflow.exporters (id, address, name) values (1, '192.0.2.1', 'bench')")
        cursor.execute("insert into ispflow.ip_assignments (account, service, prefix, valid_from) "
                       "select 'ACC-' || lpad(n::text, 5, '0'), 'fiber-100', '0.0.0.0'::inet + (%s + n), "
                       "%s from generate_series(0, %s - 1) n",
                       (SUBSCRIBER_BASE, END - timedelta(days=days + 1), subscribers))
        cursor.execute("insert into ispflow.holders (account, service) select account, service from ispflow.ip_assignments")
        cursor.execute("create unlogged table bench_stage (s_ms bigint, e_ms bigint, src bigint, dst bigint, "
                       "sport int, dport int, proto int, bytes bigint, packets bigint, sub int, outbound bool)")
    dbapi.commit()


def store_in_postgres(dbapi, flows: dict) -> None:
    """COPY the day into an unlogged staging table, then one INSERT … SELECT into the hypertable."""
    columns = [flows[k].tolist() for k in ("start", "end", "src", "dst", "src_port", "dst_port", "protocol",
                                             "bytes", "packets", "sub", "outbound")]
    text = "\n".join(",".join(map(str, row)) for row in zip(*columns)) + "\n"
    with dbapi.cursor() as cursor:
        cursor.copy_expert("copy bench_stage from stdin with (format csv)", io.StringIO(text))
        cursor.execute("""
            insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, src_port, dst_port,
                                       protocol, tcp_flags, bytes, packets, in_if, out_if, holder, direction)
            select to_timestamp(s_ms / 1000.0), to_timestamp(e_ms / 1000.0), 1,
                   '0.0.0.0'::inet + src, '0.0.0.0'::inet + dst, sport, dport, proto,
                   case when proto = 6 then 27 end, bytes, packets, 2, 1, h.id,
                   case when outbound then 'out' else 'in' end
            from bench_stage join ispflow.holders h on h.account = 'ACC-' || lpad(sub::text, 5, '0')""")
        cursor.execute("truncate bench_stage")
    dbapi.commit()


def v5_packets(flows: dict, sequence: int) -> list[bytes]:
    """The day's flows as NetFlow v5 packets of 30 records, exported just after the day ended."""
    boot_ms = flows["day_start_ms"] - 3_600_000
    export_ms = flows["day_start_ms"] + 86_400_000 + 600_000
    records = np.zeros(len(flows["start"]), dtype=V5_RECORD)
    for name in ("src", "dst", "src_port", "dst_port", "protocol", "bytes", "packets"):
        records[name] = flows[name]
    records["first"] = flows["start"] - boot_ms
    records["last"] = flows["end"] - boot_ms
    records["in_if"], records["out_if"] = 2, 1
    records["tcp_flags"] = np.where(flows["protocol"] == 6, 27, 0)
    raw = records.tobytes()
    packets = []
    for i in range(0, len(records), 30):
        count = min(30, len(records) - i)
        header = np.array([(5, count, export_ms - boot_ms, export_ms // 1000, (export_ms % 1000) * 1_000_000,
                            (sequence + i) & 0xFFFFFFFF, 0, 0, 0)],
                          dtype=[("v", ">u2"), ("n", ">u2"), ("up", ">u4"), ("secs", ">u4"), ("nsecs", ">u4"),
                                 ("seq", ">u4"), ("et", "u1"), ("ei", "u1"), ("samp", ">u2")]).tobytes()
        packets.append(header + raw[i * 48:(i + count) * 48])
    return packets


def send(sock, address, packets) -> None:
    for i, packet in enumerate(packets):
        sock.sendto(packet, address)
        if i % 50 == 49:
            time.sleep(0.002)  # ~750k flows/s at most: nfcapd keeps up without loss


COLD = False   # --cold: every timed run starts from an empty page cache


def cold() -> None:
    """Empty the kernel's page cache (root only), so a run reads from disk as a table larger
    than memory would; PostgreSQL's own shared buffers (128 MB by default) stay."""
    if COLD:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as control:
            control.write("3")


def timed(function, repeat: int = 5) -> tuple[float, object]:
    """Median wall time in ms over ``repeat`` runs after one warm-up (none with --cold), and the
    last result."""
    result = None if COLD else function()
    samples = []
    for _ in range(repeat):
        cold()
        began = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples), result


def start_nfcapd(directory: str):
    os.makedirs(directory)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", directory, "-t", "3600", "-y",
                                "-B", str(32 << 20)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return process, port


def stop(process) -> None:
    time.sleep(0.3)  # the last packets are read before the signal
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def periods(nf_dir: str, days: int, per_period: int) -> str:
    """nfdump's -M argument for the period directories holding the newest ``days`` days."""
    names = [f"days-{day:04d}" for day in range(0, days, per_period)]
    return os.path.join(nf_dir, names[0]) + "".join(":" + name for name in names[1:])


def nfdump(directories: str, start: datetime, end: datetime, expression: str,
           limit: int | None = None) -> tuple[float, int]:
    window = f"{start:%Y/%m/%d.%H:%M:%S}-{end:%Y/%m/%d.%H:%M:%S}"
    command = ["nfdump", "-M", directories, "-R", ".", "-q", "-o", "csv", "-t", window, expression]
    if limit:
        command[1:1] = ["-c", str(limit)]
    samples, rows = [], 0
    for _ in range(3):
        cold()
        began = time.perf_counter()
        out = subprocess.run(command, capture_output=True, env={**os.environ, "TZ": "UTC"}, check=True).stdout
        samples.append((time.perf_counter() - began) * 1000)
        rows = out.count(b"\n")  # -q: no header line
    return statistics.median(samples), rows


def export_child(url: str, values: dict, path: str, queue) -> None:
    """Runs in its own process so its peak memory is the export's alone."""
    criteria = parse_criteria(values, zone=ZoneInfo("UTC"), retention_months=7)
    dbapi = raw_connection(url)
    baseline = resident_mb("VmRSS")
    began = time.perf_counter()
    with open(path, "wb") as out:
        result = write_csv(dbapi, criteria, out, zone_name="UTC", connect=lambda: raw_connection(url))
    seconds = time.perf_counter() - began
    dbapi.close()
    queue.put((result.rows, seconds, baseline, resident_mb("VmHWM")))


def resident_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_export(url: str, values: dict, path: str) -> tuple[int, float, float, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=export_child, args=(url, values, path, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def ask_questions(engine, nf_dir: str, args) -> None:
    """Each question to ispflow and to nfdump; prints the table of figures."""
    rows = []
    with engine.connect() as conn:
        questions = []
        for label, sub in (("typical", TYPICAL), ("heavy", HEAVY)):
            for days in (30, 180):
                if days <= args.days:
                    questions.append((f"{label} subscriber, {days} days", ip_text(SUBSCRIBER_BASE + sub),
                                      days, f"host {ip_text(SUBSCRIBER_BASE + sub)}"))
        questions.append(("typical subscriber by account, 30 days", f"account:ACC-{TYPICAL:05d}", 30,
                          f"host {ip_text(SUBSCRIBER_BASE + TYPICAL)}"))
        questions.append(("CIDR /24, 30 days", "100.64.3.0/24", 30, "net 100.64.3.0/24"))
        for label, ip, days, expression in questions:
            start = END - timedelta(days=days)
            key, value = ip.split(":", 1) if ip.startswith("account:") else ("ip", ip)
            criteria = parse_criteria({key: value, "from": start.isoformat(), "to": END.isoformat(),
                                       "case_ref": "bench"}, zone=ZoneInfo("UTC"), retention_months=7)
            first_ms, _ = timed(lambda: fetch_page(conn, criteria))
            full_ms, result = timed(lambda: all_rows(conn, criteria), repeat=3)
            count = len(result)
            totals_ms, _ = timed(lambda: totals(conn, criteria), repeat=3)
            read = periods(nf_dir, days, args.nfcapd_days)
            nf_first_ms, _ = nfdump(read, start, END, expression, limit=100)
            nf_full_ms, nf_rows = nfdump(read, start, END, expression)
            rows.append((label, count, first_ms, full_ms, totals_ms, nf_first_ms, nf_full_ms, nf_rows))
    print()
    print("| question | rows | ispflow first page | ispflow full result | ispflow totals | "
          "nfdump first 100 (-c 100) | nfdump full | nfdump full ÷ ispflow first page | ÷ ispflow full |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, count, first_ms, full_ms, totals_ms, nf_first, nf_full, nf_rows in rows:
        note = "" if nf_rows == count else f" (nfdump {nf_rows:,})"
        print(f"| {label} | {count:,}{note} | {first_ms:.1f} ms | {full_ms:.1f} ms | {totals_ms:.1f} ms | "
              f"{nf_first:.0f} ms | {nf_full:.0f} ms | {nf_full / first_ms:.0f}x | {nf_full / full_ms:.1f}x |")


def stored_size(engine, flows: int) -> str:
    """The flows hypertable's size, and per flow: all, the table, the indexes."""
    with engine.connect() as conn:
        table, indexes = conn.exec_driver_sql(
            "select sum(table_bytes + coalesce(toast_bytes, 0)), sum(index_bytes) "
            "from chunks_detailed_size('ispflow.flows')").one()
    return (f"{(table + indexes) / 1e9:.2f} GB = {(table + indexes) / flows:.1f} B/flow "
            f"(table {table / flows:.1f}, indexes {indexes / flows:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--flows-per-day", type=int, default=8, help="per typical subscriber")
    parser.add_argument("--big", action="store_true",
                        help="2x subscribers and 2x flows per subscriber: about 12M flows")
    parser.add_argument("--nfcapd-days", type=int, default=10, help="days per nfcapd file period")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and nfcapd files")
    parser.add_argument("--ordered", action="store_true",
                        help="then rewrite every closed day in subscriber order (the chunk-order job) and ask again")
    parser.add_argument("--cold", action="store_true",
                        help="empty the page cache before every timed query, ispflow's and nfdump's (root)")
    args = parser.parse_args()
    global COLD
    COLD = args.cold
    if args.big:
        args.subscribers *= 2
        args.flows_per_day *= 2
    server = os.environ.get("ISPFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = re.sub(r"/[^/]*$", f"/ispflow_bench_{secrets.token_hex(3)}", server)
    workdir = tempfile.mkdtemp(prefix="ispflow-bench-")
    nf_dir = os.path.join(workdir, "nfcapd")
    os.makedirs(nf_dir)
    began_all = time.perf_counter()
    upgrade(url)
    collector = None
    try:
        dbapi = raw_connection(url)
        prepare(dbapi, args.subscribers, args.days)
        rng = np.random.default_rng(2026)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        total, pg_seconds, sequence, port = 0, 0.0, 0, 0
        for day in range(args.days):
            if day % args.nfcapd_days == 0:
                # A fresh nfcapd (and directory) per period, as files are kept per period in
                # production: nfdump then reads only the periods a question covers.
                if collector is not None:
                    stop(collector)
                collector, port = start_nfcapd(os.path.join(nf_dir, f"days-{day:04d}"))
            flows = day_flows(rng, day, args.subscribers, args.flows_per_day)
            began = time.perf_counter()
            store_in_postgres(dbapi, flows)
            pg_seconds += time.perf_counter() - began
            send(sock, ("127.0.0.1", port), v5_packets(flows, sequence))
            sequence += len(flows["start"])
            total += len(flows["start"])
        sock.close()
        stop(collector)
        collector = None
        with dbapi.cursor() as cursor:
            cursor.execute("drop table bench_stage")
            cursor.execute("analyze ispflow.flows")
        dbapi.commit()
        dbapi.close()
        stored = subprocess.run(["nfdump", "-M", periods(nf_dir, args.days, args.nfcapd_days), "-R", ".",
                                 "proto 255"], capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}).stdout
        nf_count = int(re.search(r"Total flows processed: (\d+)", stored).group(1))
        print(f"data set: {total:,} flows, {args.subscribers} subscribers (one heavy: 50x), {args.days} days; "
              f"PostgreSQL load {total / pg_seconds:,.0f} flows/s; nfcapd received {nf_count:,} "
              f"({100 * nf_count / total:.2f} %)")

        engine = engine_for(url)
        size = stored_size(engine, total)
        print(f"flows hypertable: {size}; nfcapd files (LZ4): "
              f"{sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(nf_dir) for f in fs) / 1e6:.0f} MB")
        ask_questions(engine, nf_dir, args)
        if args.ordered:
            began = time.perf_counter()
            ordered = order_closed(engine, now=END + timedelta(days=1), budget_s=float("inf"))
            seconds = time.perf_counter() - began
            size = stored_size(engine, total)
            print(f"\nchunk order: {len(ordered)} chunks rewritten in subscriber order in {seconds:.1f} s "
                  f"({total / seconds:,.0f} flows/s); flows hypertable now {size}; the same questions again:")
            ask_questions(engine, nf_dir, args)
        print()
        print("| export | rows | seconds | rows/s | exporting process: RSS before → peak |")
        print("|---|---:|---:|---:|---:|")
        for label, values in (
            ("CIDR /24, 30 days", {"ip": "100.64.3.0/24", "from": (END - timedelta(days=30)).isoformat()}),
            (f"all subscribers, {args.days} days", {"ip": "100.64.0.0/16",
                                                     "from": (END - timedelta(days=args.days)).isoformat()}),
        ):
            values.update({"to": END.isoformat(), "case_ref": "bench", "ip_side": "either"})
            count, seconds, before_mb, peak_mb = run_export(url, values, os.path.join(workdir, "export.csv"))
            print(f"| {label} | {count:,} | {seconds:.2f} | {count / seconds:,.0f} | "
                  f"{before_mb:.0f} → {peak_mb:.0f} MB |")
        began = time.perf_counter()
        with open(os.path.join(workdir, "nfdump.csv"), "wb") as out:
            start = END - timedelta(days=args.days)
            window = f"{start:%Y/%m/%d.%H:%M:%S}-{END:%Y/%m/%d.%H:%M:%S}"
            subprocess.run(["nfdump", "-M", periods(nf_dir, args.days, args.nfcapd_days), "-R", ".", "-q", "-o", "csv",
                            "-t", window, "net 100.64.0.0/16"],
                           stdout=out, env={**os.environ, "TZ": "UTC"}, check=True)
        seconds = time.perf_counter() - began
        with open(os.path.join(workdir, "nfdump.csv"), "rb") as produced:
            nf_rows = sum(1 for _ in produced)
        print(f"| nfdump -o csv, all subscribers, {args.days} days | {nf_rows:,} | {seconds:.2f} | "
              f"{nf_rows / seconds:,.0f} | |")
        print(f"\nwhole run: {time.perf_counter() - began_all:.0f} s")
    finally:
        if collector is not None:
            collector.kill()
        engine_for(url).dispose()
        if not args.keep:
            drop_database(url)
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept database {url} and {workdir}")


if __name__ == "__main__":
    sys.exit(main())
