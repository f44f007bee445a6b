"""Memory of a running collector under a flood of distinct templates from one trusted sender.

    .venv/bin/python bench/template_flood.py [--templates 100000] [--fields 300] [--domains 500]

Starts ``ispflow collector`` on a fresh database (created and dropped here, on the server of
ISPFLOW_TEST_DATABASE_URL or postgres@127.0.0.1), trusts 127.0.0.1 and .2, and sends NetFlow v9
template packets: ``--templates`` distinct templates of ``--fields`` fields, spread over
``--domains`` source ids, 4 templates per packet. It reads the collector's resident memory
(VmRSS) before and after, then sends 1,000 ordinary flows, half from the flooding sender's first
source id and half from another trusted router (127.0.0.2), and checks that they are stored. The issue's figure for an unbounded decoder: 100,000 × 300 fields over 500
source ids grew it to 2.1 GB.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ispflow.database import drop_database, engine_for, upgrade  # noqa: E402
from tests import synthetic  # noqa: E402
from tests.synthetic import Exporter  # noqa: E402

EXPORT = 1_767_225_900.0


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def flood(templates: int, fields: int, domains: int) -> list[bytes]:
    """v9 packets of distinct templates (element ids vary so that no two specs are alike)."""
    packets = []
    for first in range(0, templates, 4):
        sets = bytearray()
        for n in range(first, min(first + 4, templates)):
            tid = 256 + n % 65280
            spec = [(100 + (n + k) % 300, 4) for k in range(fields)]
            body = struct.pack(">HH", tid, fields) + b"".join(struct.pack(">HH", f, length) for f, length in spec)
            sets += struct.pack(">HH", 0, 4 + len(body)) + body
        header = struct.pack(">HHIIII", 9, 4, 3_600_000, int(EXPORT), first // 4, first // 4 % domains)
        packets.append(header + bytes(sets))
    return packets


def packets_counted(engine) -> int:
    with engine.connect() as conn:
        counters = conn.execute(sa.text("select counters from ispflow.collector_heartbeats")).scalar()
    return (counters or {}).get("packets", 0)


def flows_stored(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("select count(*) from ispflow.flows")).scalar()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--fields", type=int, default=300)
    parser.add_argument("--domains", type=int, default=500)
    args = parser.parse_args()

    server = os.environ.get("ISPFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    url = re.sub(r"/[^/]*$", f"/ispflow_flood_{secrets.token_hex(3)}", server)
    upgrade(url)
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.execute(sa.text("insert into ispflow.exporters (address, trusted, trusted_by) values "
                             "('127.0.0.1', true, 'bench'), ('127.0.0.2', true, 'bench')"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = Path(f"/tmp/ispflow-flood-{os.getpid()}")
    env = {**os.environ, "ISPFLOW_DATABASE_URL": url, "ISPFLOW_SPOOL_DIR": str(workdir / "spool"),
           "ISPFLOW_STATE_DIR": str(workdir / "state")}
    command = [str(Path(sys.executable).with_name("ispflow")), "collector", "--listen", f"127.0.0.1:{port}"]
    log = open(workdir.with_suffix(".log"), "w")
    process = subprocess.Popen(command, env=env, stderr=log)
    try:
        time.sleep(3)
        before = rss_mb(process.pid)
        packets = flood(args.templates, args.fields, args.domains)
        sent_bytes = sum(map(len, packets))
        started = time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
            for i, packet in enumerate(packets, 1):
                out.sendto(packet, ("127.0.0.1", port))
                if i % 100 == 0:
                    time.sleep(0.002)  # the flood arrives; we measure memory, not the socket buffer
        sending = time.monotonic() - started
        deadline = time.monotonic() + 120
        peak = rss_mb(process.pid)
        while packets_counted(engine) < len(packets) and time.monotonic() < deadline:
            time.sleep(1)
            peak = max(peak, rss_mb(process.pid))
        time.sleep(6)  # a heartbeat, and a save of the state, after the flood
        after = rss_mb(process.pid)
        peak = max(peak, after)
        counted = packets_counted(engine)
        # Another trusted router, and the flooding sender's first source id (its template ids
        # are the flood's: a refresh replaces one).
        batch = synthetic.generate_flows(1000, seed=1, start=EXPORT - 300)
        for source, domain, half in (("127.0.0.2", 4242, batch[:500]), ("127.0.0.1", 0, batch[500:])):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                out.bind((source, 0))
                for packet in Exporter(9, domain=domain).packets(half, synthetic.V9_IPV4, EXPORT, with_template="every"):
                    out.sendto(packet, ("127.0.0.1", port))
        deadline = time.monotonic() + 30
        while flows_stored(engine) < len(batch) and time.monotonic() < deadline:
            time.sleep(0.5)
        stored = flows_stored(engine)
        state = (workdir / "state" / "templates.json")
        with engine.connect() as conn:
            dropped = conn.execute(sa.text("select dropped from ispflow.exporters where address = '127.0.0.1'")).scalar()
        print(f"flood: {len(packets)} packets, {args.templates} templates x {args.fields} fields over "
              f"{args.domains} source ids, {sent_bytes / 1e6:.0f} MB sent in {sending:.1f} s; "
              f"{counted} packets counted by the collector")
        print(f"collector RSS: {before:.0f} MB before, {peak:.0f} MB peak, {after:.0f} MB after")
        print(f"state file: {state.stat().st_size / 1e6:.1f} MB" if state.exists() else "state file: none")
        print(f"refused and dropped for the sender: {dropped}")
        print(f"then {stored} of {len(batch)} flows stored (half from another trusted router, half from the "
              "flooding sender's first source id)")
        return 0 if stored == len(batch) else 1
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
