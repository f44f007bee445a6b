"""Ingest benchmark: flows/s stored (and loss) on the same generated stream, side by side:

- ispflow's collector into TimescaleDB (its real schema and indexes);
- pmacct's nfacctd with its PostgreSQL plugin (COPY, one row per flow) into a hypertable
  with the same chunking and IP indexes;
- nfcapd writing files (no database: the ceiling).

    .venv/bin/python bench/ingest.py --flows 1000000 [--version 9|10|5] [--rate FLOWS_PER_S] [--shape many|few]
                                     [--rollups]

The stream is dated in the current hour, as live traffic is: ispflow's collector (roll-ups on,
its default) holds the hour in memory and writes its roll-ups when it stops.

``--rollups`` measures the analytics issue's "ingest with roll-ups kept up": ispflow runs twice,
with the collector's roll-ups off (storing alone; the roll-up job is then timed rebuilding the
same flows, the way without the collector's roll-ups) and on (storing, the flush of the roll-ups
when the collector stops, and the job's check of the hour, all timed).

Stream shapes: ``many`` — 16k subscribers (100.64.0.0/18), IPv4 only; ``few`` — 62 subscribers
(100.64.0.0/26) with many flows each, 10 % of the flows IPv6 (NetFlow v9 / IPFIX only).

nfacctd gets the tuned configuration of issue 14 (``TUNED_NFACCTD`` below; the benchmark raises
``net.core.rmem_max`` to 256 MB), so the comparison is against the peer at its best.

Prints one line per peer. Needs PostgreSQL + TimescaleDB on 127.0.0.1 and Debian's nfdump and
pmacct (scripts/install-services.sh --test installs them). Not part of the test suite.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import synthetic  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"


SHAPES = {
    "many": dict(subscriber_prefix="100.64.0.0/18", ipv6_share=0.0),
    "few": dict(subscriber_prefix="100.64.0.0/26", ipv6_share=0.1),
}


def stream(n: int, version: int, shape: str, t0: float) -> list[bytes]:
    """The benchmark's datagrams: ``n`` flows starting within 10 minutes of ``t0``."""
    options = SHAPES[shape]
    if version == 5 and options["ipv6_share"]:
        raise SystemExit("NetFlow v5 carries no IPv6: use --shape many with --version 5")
    flows = synthetic.generate_flows(n, seed=42, start=t0, duration=600, **options)
    if version == 5:
        return synthetic.v5_packets(flows, export_time=t0 + 700)
    exporter = synthetic.Exporter(version=version, boot_time=t0 - 3600)
    v4, v6 = ((synthetic.V9_IPV4, synthetic.V9_IPV6) if version == 9 else (synthetic.IPFIX_IPV4, synthetic.IPFIX_IPV6))
    packets = []
    for i in range(0, len(flows), 2800):  # each block's IPv4 packets, then its IPv6 ones
        block = flows[i:i + 2800]
        for template, family in ((v4, False), (v6, True)):
            part = [flow for flow in block if (":" in flow["src"]) == family]
            if part:
                packets += exporter.packets(part, template, export_time=t0 + 700, with_template="every")
    return packets


def live_start() -> float:
    """The start of the stream's 10 minutes: this hour, as live traffic is (so the collector holds
    it in memory until the hour closes), or the next one when this one closes too soon."""
    now = time.time()
    return now // 3600 * 3600 + (3600 if now % 3600 > 45 * 60 else 0)


def send(packets: list[bytes], port: int, rate: float, flows_per_packet: float) -> float:
    """Send everything (paced to ``rate`` flows/s when given); returns the seconds it took."""
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.perf_counter()
    for i, packet in enumerate(packets):
        out.sendto(packet, ("127.0.0.1", port))
        if rate and i % 16 == 0:
            due = start + i * flows_per_packet / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    out.close()
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def psql(database: str, sql: str) -> str:
    return subprocess.run(["psql", "-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-U", "postgres", "-d", database,
                           "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True, text=True).stdout.strip()


def fresh_database(name: str) -> str:
    psql("postgres", f"drop database if exists {name} with (force)")
    psql("postgres", f"create database {name}")
    return f"{SERVER}/{name}"


def wait_for_rows(database: str, table: str, expected: int, start: float, idle: float = 5.0) -> tuple[int, float]:
    """Poll the row count until it reaches ``expected`` or stops growing; (rows, seconds)."""
    rows, last_change = 0, time.perf_counter()
    while True:
        now_rows = int(psql(database, f"select count(*) from {table}"))
        if now_rows != rows:
            rows, last_change = now_rows, time.perf_counter()
        if rows >= expected or time.perf_counter() - last_change > idle:
            return rows, last_change - start
        time.sleep(0.2)


# Attribution on: every address of the subscriber prefixes belongs to an account, as in production.
SUBSCRIBERS = """
insert into ispflow.ip_assignments (account, service, prefix, valid_from)
select 'A' || n, 'fiber', cast(host(cast('100.64.0.0' as inet) + n) as cidr), '2025-01-01'
from generate_series(0, 16383) n;
insert into ispflow.ip_assignments (account, service, prefix, valid_from)
values ('V6', 'fiber', '2001:db8:100::/48', '2025-01-01');
"""


def run_ispflow(packets, n, rate, per_packet, rollups: bool | None = None, t0: float = 0.0) -> dict:
    """Store the stream with ispflow's collector; ``rollups`` on or off (None: the default)."""
    url = fresh_database("ispflow_bench")
    admin = {**os.environ, "ISPFLOW_DATABASE_URL": url, "ISPFLOW_AUDIT_KEY": "bench"}
    subprocess.run([str(ROOT / ".venv/bin/ispflow"), "db", "upgrade"], env=admin, check=True, capture_output=True)
    subprocess.run([str(ROOT / ".venv/bin/ispflow"), "exporters", "trust", "127.0.0.1"], env=admin,
                   check=True, capture_output=True)
    psql("ispflow_bench", SUBSCRIBERS)
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="ispflow-bench-"))
    env = {**admin, "ISPFLOW_SPOOL_DIR": str(work / "spool"),
           "ISPFLOW_STATE_DIR": str(work / "state"), "ISPFLOW_COLLECTOR_LISTEN": f"127.0.0.1:{port}"}
    if rollups is not None:
        env["ISPFLOW_COLLECTOR_ROLLUPS"] = "yes" if rollups else "no"
    process = subprocess.Popen([str(ROOT / ".venv/bin/ispflow"), "collector"], env=env,
                               stderr=subprocess.PIPE, text=True)
    while "receiving on" not in process.stderr.readline():
        pass
    cpu_before = _cpu(process.pid)
    start = time.perf_counter()
    sent_in = send(packets, port, rate, per_packet)
    rows, seconds = wait_for_rows("ispflow_bench", "ispflow.flows", n, start)
    cpu_stored = _cpu(process.pid) - cpu_before
    stopping = time.perf_counter()
    cpu_end = [cpu_stored]

    def sample():   # the process's CPU just before it exits (the flush at stop included)
        while process.poll() is None:
            cpu_end[0] = _cpu(process.pid) - cpu_before
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)
    sampler.join()
    tail = process.stderr.read()
    if os.environ.get("BENCH_VERBOSE"):
        print(tail)
    stop_seconds = time.perf_counter() - stopping
    label = {None: "", False: " (roll-ups off)", True: " (roll-ups on)"}[rollups]
    result = dict(peer=f"ispflow collector → TimescaleDB{label}", rows=rows, seconds=seconds, send=sent_in,
                  cpu=cpu_stored, stop_seconds=stop_seconds, stop_cpu=cpu_end[0] - cpu_stored)
    if rollups is False:
        result["job_seconds"] = roll_up_stream(url, t0, rebuild=True)
    elif rollups:
        result["rolled"] = int(psql("ispflow_bench", "select coalesce(sum(flows), 0) from ispflow.rollup_network_5m"))
        result["check_seconds"] = roll_up_stream(url, t0, rebuild=False)
        result["rebuilt"] = psql("ispflow_bench", "select count(*) from ispflow.analytics_watermarks "
                                                  "where name = 'rollups-rebuild-until'") != "0"
    return result


def roll_up_stream(url: str, t0: float, rebuild: bool) -> float:
    """Seconds the roll-up job takes over the stream's hours: rebuilding them from the stored
    flows (what keeping roll-ups costs without the collector's), or checking them as the
    periodic job does once they have settled."""
    from datetime import datetime, timedelta, timezone

    from ispflow.analytics import rollups
    from ispflow.database import engine_for

    hour = datetime.fromtimestamp(t0 // 3600 * 3600, timezone.utc)
    end = hour + timedelta(hours=2)   # the stream's 10 minutes and its flows' pieces
    began = time.perf_counter()
    if rebuild:
        rollups.rebuild(engine_for(url), hour, end)
    else:
        rollups.update(engine_for(url), now=end + rollups.SETTLE)
    return time.perf_counter() - began


PMACCT_TABLE = """
create extension if not exists timescaledb;
create table flows_pmacct (
    ip_src inet not null, ip_dst inet not null, port_src int not null, port_dst int not null,
    ip_proto smallint not null, tcp_flags smallint not null, packets int not null, bytes bigint not null,
    timestamp_start timestamp not null, timestamp_start_residual int not null default 0,
    timestamp_end timestamp not null, timestamp_end_residual int not null default 0,
    stamp_inserted timestamp, stamp_updated timestamp);
select create_hypertable('flows_pmacct', 'timestamp_start', chunk_time_interval => interval '1 day',
                         create_default_indexes => false);
create index on flows_pmacct using brin (timestamp_start);
create index on flows_pmacct (ip_src, timestamp_start);
create index on flows_pmacct (ip_dst, timestamp_start);
"""


# Issue 14's tuned nfacctd: large socket and plugin pipes, COPY, no UPDATE attempts, 2 s flushes.
TUNED_NFACCTD = (
    "nfacctd_pipe_size: 268435456\n"
    "plugin_pipe_size: 536870912\n"
    "plugin_buffer_size: 102400\n"
    "sql_use_copy: true\n"
    "sql_dont_try_update: true\n"
    "sql_refresh_time: 2\n"
    "sql_cache_entries: 1048573\n"
)


def run_nfacctd(packets, n, rate, per_packet) -> dict:
    fresh_database("ispflow_bench_pmacct")
    psql("ispflow_bench_pmacct", PMACCT_TABLE)
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="nfacctd-bench-"))
    config = work / "nfacctd.conf"
    config.write_text(
        f"daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\n"
        "plugins: pgsql\nsql_host: 127.0.0.1\nsql_user: postgres\nsql_passwd: unused\nsql_db: ispflow_bench_pmacct\n"
        "sql_table: flows_pmacct\nsql_optimize_clauses: true\nnfacctd_time_new: true\n"
        + TUNED_NFACCTD +
        "aggregate: src_host, dst_host, src_port, dst_port, proto, tcpflags, timestamp_start, timestamp_end\n"
    )
    process = subprocess.Popen(["nfacctd", "-f", str(config)], stdout=subprocess.DEVNULL,
                               stderr=open(work / "nfacctd.log", "w"))
    time.sleep(2)
    cpu_before = _cpu(process.pid)
    start = time.perf_counter()
    sent_in = send(packets, port, rate, per_packet)
    # With sql_refresh_time 2 the first purge is one COPY of everything received: give it time.
    rows, seconds = wait_for_rows("ispflow_bench_pmacct", "flows_pmacct", n, start, idle=60.0)
    cpu = _cpu(process.pid) - cpu_before
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    return dict(peer="nfacctd pgsql plugin → TimescaleDB", rows=rows, seconds=seconds, send=sent_in, cpu=cpu)


def run_nfcapd(packets, n, rate, per_packet) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="nfcapd-bench-"))
    port = free_port()
    process = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(directory), "-t", "3600",
                                "-B", "33554432"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    cpu_before = _cpu(process.pid)
    start = time.perf_counter()
    sent_in = send(packets, port, rate, per_packet)
    time.sleep(1)
    cpu = _cpu(process.pid) - cpu_before
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    seconds = time.perf_counter() - start - 1
    output = subprocess.run(["nfdump", "-R", str(directory), "-q", "-o", "csv"], capture_output=True, text=True).stdout
    rows = sum(1 for line in output.splitlines() if line.count(",") > 10)
    return dict(peer="nfcapd → files (no database)", rows=rows, seconds=seconds, send=sent_in, cpu=cpu)


def _cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(x) for x in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--version", type=int, default=9, choices=(5, 9, 10))
    parser.add_argument("--rate", type=float, default=0.0, help="flows/s to send at (0 = as fast as possible)")
    parser.add_argument("--peers", default="ispflow,nfacctd,nfcapd")
    parser.add_argument("--shape", default="many", choices=sorted(SHAPES))
    parser.add_argument("--rollups", action="store_true",
                        help="ispflow twice, the collector's roll-ups off and on, the stream dated now")
    args = parser.parse_args()
    try:  # nfacctd needs a large socket buffer (it lost 11 % of a 1M-flow burst with the 4 MB default)
        Path("/proc/sys/net/core/rmem_max").write_text("268435456")
    except OSError:
        print("note: could not raise net.core.rmem_max (not root?): nfacctd may lose flows")
    t0 = live_start()
    packets = stream(args.flows, args.version, args.shape, t0)
    per_packet = args.flows / len(packets)
    print(f"stream: {args.flows} flows in {len(packets)} NetFlow v{args.version} packets "
          f"({per_packet:.1f} flows/packet), shape {args.shape}, rate {'max' if not args.rate else f'{args.rate:,.0f} flows/s'}")
    runners = {"ispflow": run_ispflow, "nfacctd": run_nfacctd, "nfcapd": run_nfcapd}
    alone = None
    for name in args.peers.split(","):
        modes = (False, True) if name == "ispflow" and args.rollups else (None,)
        for mode in modes:
            if name == "ispflow":
                result = run_ispflow(packets, args.flows, args.rate, per_packet, mode, t0)
            else:
                result = runners[name](packets, args.flows, args.rate, per_packet)
            loss = 100.0 * (1 - result["rows"] / args.flows)
            print(f"{result['peer']:38s} stored {result['rows']:>9,} in {result['seconds']:6.2f} s = "
                  f"{result['rows'] / max(result['seconds'], 1e-9):>10,.0f} flows/s, loss {loss:5.2f} %, "
                  f"sent in {result['send']:.2f} s, process CPU {result['cpu']:.1f} s", flush=True)
            if mode is False:
                alone = result["rows"] / result["seconds"]
                job, both = result["job_seconds"], result["seconds"] + result["job_seconds"]
                print(f"{'  + stop':38s} {result['stop_seconds']:6.2f} s (CPU {result['stop_cpu']:.1f} s)", flush=True)
                print(f"{'  + roll-up job over the same flows':38s} {job:6.2f} s; stored and rolled up by the job: "
                      f"{result['rows'] / both:,.0f} flows/s = {100 * result['seconds'] / both:.0f} % of storing alone",
                      flush=True)
            elif mode is True:
                total = result["seconds"] + result["stop_seconds"] + result["check_seconds"]
                rate_on = result["rows"] / total
                print(f"{'  + flush at stop, the job checks':38s} stop {result['stop_seconds']:.2f} s "
                      f"(CPU {result['stop_cpu']:.1f} s), check {result['check_seconds']:.2f} s; "
                      f"rolled up {result['rolled']:,} flows{', hour REBUILT by the job' if result['rebuilt'] else ''}; "
                      f"stored and rolled up: {rate_on:,.0f} flows/s = {100 * rate_on / alone:.0f} % of storing "
                      f"alone (the roll-ups-off run)", flush=True)


if __name__ == "__main__":
    main()
