"""The collector keeps collecting: bad packets, database outages and restarts lose nothing."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from ispflow.collector import trust
from tests import synthetic
from ispflow.collector.sockets import kernel_drops
from ispflow.database import engine_for
from ispflow.subscribers import Assignment, save_assignments
from ispflow.testing import RunningCollector

from .netflow_tools import send
from .tcp_proxy import TcpProxy

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def flows(n, seed=1, **options):
    return synthetic.generate_flows(n, seed=seed, start=T0, subscriber_prefix="100.64.0.0/22", **options)


def v9_packets(batch, exporter=None):
    exporter = exporter or synthetic.Exporter(version=9, boot_time=T0 - 3600)
    return exporter.packets(batch, synthetic.V9_IPV4, export_time=T0 + 400, with_template="every")


def count(engine, sql="select count(*) from ispflow.flows", **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def assign(collector, engine, *assignments):
    """Add to the subscriber directory and make the running collector reload it."""
    with Session(engine) as session:
        save_assignments(session, assignments)
        session.commit()
    collector.collector._refresh_directory()


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_flows_are_attributed_to_the_subscriber_of_the_moment(collector, db_engine):
    assign(collector, db_engine, Assignment.parse("POOL-A", "cgnat", "100.64.0.0/22", "2025-01-01T00:00:00Z"))
    batch = flows(600)
    send(v9_packets(batch), collector.ports()[0])
    rows = collector.wait_for_flows(db_engine, len(batch))
    assert len(rows) == len(batch)
    for row in rows:
        subscriber_is_source = row["sa"].startswith("100.64.")
        assert row["account"] == "POOL-A"
        assert row["direction"] == ("out" if subscriber_is_source else "in")


def test_exporter_is_registered_with_its_counters_and_lost_flows(collector, db_engine):
    batch = flows(90)
    packets = synthetic.v5_packets([f for f in batch if ":" not in f["src"]][:90], export_time=T0 + 400)
    del packets[1]  # a lost packet of 30 flows: the sequence numbers jump
    send(packets, collector.ports()[0])
    collector.wait_for_flows(db_engine, 60)
    assert wait_until(lambda: count(db_engine, "select coalesce(sum(flows), 0) from ispflow.exporters") >= 60)
    with db_engine.connect() as conn:
        exporter = conn.execute(sa.text("select * from ispflow.exporters")).mappings().one()
    assert str(exporter["address"]) == "127.0.0.1"
    assert (exporter["netflow_version"], exporter["packets"], exporter["flows"]) == (5, 2, 60)
    assert exporter["lost_flows"] == 30
    assert exporter["last_flow_at"] is not None
    # the packets say T0 + 400 s, long ago: the exporter's clock is far behind ours
    assert exporter["clock_skew_s"] > 3600


def test_malformed_packets_are_counted_and_collection_goes_on(collector, db_engine):
    exporter = synthetic.Exporter(version=9, boot_time=T0 - 3600)
    good = v9_packets(flows(40), exporter)
    hostile = [
        b"",                                   # empty
        b"\x00\x09\x00",                        # truncated header
        b"\x00\x07" + bytes(40),                # unknown version
        good[0][:30],                           # truncated set
        good[0][:20] + b"\x00\x00\x00\x04" + good[0][24:],  # template set claiming 4 bytes
        os.urandom(1400),
    ]
    send(hostile + good, collector.ports()[0])
    rows = collector.wait_for_flows(db_engine, 40)
    assert len(rows) == 40
    assert wait_until(lambda: count(db_engine, "select coalesce(sum(decode_errors), 0) from ispflow.exporters") >= 5)
    assert collector.counters["decode_errors"] >= 5


def test_data_before_its_template_is_held_and_stored_when_the_template_arrives(collector, db_engine):
    exporter = synthetic.Exporter(version=10, domain=3)
    batch = flows(20)
    data_only = exporter.packets(batch, synthetic.IPFIX_IPV4, export_time=T0 + 400, with_template="never")
    template = exporter.packet([exporter.template_set(synthetic.IPFIX_IPV4)], export_time=T0 + 401)
    send(data_only, collector.ports()[0])
    time.sleep(0.5)
    assert count(db_engine) == 0
    send([template], collector.ports()[0])
    assert len(collector.wait_for_flows(db_engine, 20)) == 20


def test_heartbeat_reports_the_collectors_counters(collector, db_engine):
    send(v9_packets(flows(30)), collector.ports()[0])
    collector.wait_for_flows(db_engine, 30)
    assert wait_until(lambda: count(
        db_engine, "select count(*) from ispflow.collector_heartbeats where (counters->>'flows_stored')::int >= 30"))
    with db_engine.connect() as conn:
        beat = conn.execute(sa.text("select * from ispflow.collector_heartbeats")).mappings().one()
    for key in ("packets", "records", "flows_stored", "decode_errors", "kernel_drops", "spooled_batches", "lost_flows"):
        assert key in beat["counters"]
    assert beat["pid"] == os.getpid()


def test_nat_events_are_stored_with_the_subscriber_of_the_private_address(collector, db_engine):
    assign(collector, db_engine, Assignment.parse("ACC-NAT", "fiber", "100.64.1.2", "2025-01-01T00:00:00Z"))
    exporter = synthetic.Exporter(version=10, domain=9)
    event = dict(event=1, time=T0 + 10, private="100.64.1.2", private_port=40000, public="198.51.100.200",
                 public_port=20001, port_block_start=20000, port_block_end=20999, dst="192.0.2.80", dst_port=443,
                 protocol=6)
    send([exporter.packet([exporter.template_set(synthetic.IPFIX_NAT),
                           exporter.data_set(synthetic.IPFIX_NAT, [event], T0 + 11)], T0 + 11, 1)], collector.ports()[0])
    assert wait_until(lambda: count(db_engine, "select count(*) from ispflow.nat_events"))
    with db_engine.connect() as conn:
        row = conn.execute(sa.text("select * from ispflow.nat_events")).mappings().one()
    assert (str(row["private_addr"]), row["private_port"], str(row["public_addr"]), row["public_port"]) == (
        "100.64.1.2", 40000, "198.51.100.200", 20001)
    assert (row["port_block_start"], row["port_block_end"], row["account"]) == (20000, 20999, "ACC-NAT")


def test_a_database_outage_is_spooled_and_replayed_exactly_once(database_url, db_engine, tmp_path):
    url = make_url(database_url)
    proxy = TcpProxy(url.host, url.port or 5432)
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    running = RunningCollector(through_proxy, tmp_path)
    running.start()
    try:
        exporter = synthetic.Exporter(version=9, boot_time=T0 - 3600)
        first, during, after = flows(300, seed=1), flows(500, seed=2), flows(200, seed=3)
        send(v9_packets(first, exporter), running.ports()[0])
        assert len(running.wait_for_flows(db_engine, 300)) == 300
        proxy.cut()
        send(v9_packets(during, exporter), running.ports()[0])
        assert wait_until(lambda: len(running.spool) > 0), "nothing was spooled"
        assert count(db_engine) == 300
        proxy.restore()
        send(v9_packets(after, exporter), running.ports()[0])
        rows = running.wait_for_flows(db_engine, 1000, timeout=30)
        assert len(rows) == 1000
        sent = sorted((f["src"], f["dst"], f["src_port"], f["dst_port"], f["bytes"]) for f in first + during + after)
        assert sorted((r["sa"], r["da"], r["sp"], r["dp"], r["bytes"]) for r in rows) == sent
        assert len(running.spool) == 0
    finally:
        running.stop()
        proxy.close()
        engine_for(through_proxy).dispose()


def test_ipv6_socket_receives_flows(database_url, db_engine, tmp_path):
    running = RunningCollector(database_url, tmp_path)
    running.collector.listen = [("::1", 0)]
    running.start(trusted=("::1",))
    try:
        send(v9_packets(flows(10)), running.ports()[0], host="::1")
        assert len(running.wait_for_flows(db_engine, 10)) == 10
    finally:
        running.stop()


def test_kernel_drops_are_read_for_our_sockets():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for _ in range(200):
            out.sendto(bytes(1400), sock.getsockname())
    try:
        assert kernel_drops([sock]) > 0
    finally:
        sock.close()


def test_sigterm_stores_everything_and_templates_survive_a_restart(database_url, db_engine, tmp_path):
    port = _free_port()
    env = {**os.environ, "ISPFLOW_DATABASE_URL": database_url, "ISPFLOW_SPOOL_DIR": str(tmp_path / "spool"),
           "ISPFLOW_STATE_DIR": str(tmp_path / "state"), "ISPFLOW_COLLECTOR_LISTEN": f"127.0.0.1:{port}"}
    command = [str(Path(sys.executable).with_name("ispflow")), "collector"]
    exporter = synthetic.Exporter(version=10, domain=1)
    first = exporter.packets(flows(100, seed=5), synthetic.IPFIX_IPV4, export_time=T0 + 400, with_template="first")
    later = exporter.packets(flows(50, seed=6), synthetic.IPFIX_IPV4, export_time=T0 + 500, with_template="never")
    with db_engine.begin() as conn:
        trust.trust(conn, "127.0.0.1", actor="test")

    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as process:
        _wait_for_port(process)
        send(first, port)
        time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert count(db_engine) == 100
    assert json.loads((tmp_path / "state" / "templates.json").read_text())

    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as process:
        _wait_for_port(process)
        send(later, port)  # data only: the template is the one saved at shutdown
        stored = wait_until(lambda: count(db_engine) == 150)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert stored


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(process) -> None:
    seen = []
    while not seen or "receiving on" not in seen[-1]:
        line = process.stderr.readline()
        assert line, "the collector exited: " + "".join(seen)
        seen.append(line)


def test_a_bad_listen_address_is_one_sentence(database_url):
    result = subprocess.run([str(Path(sys.executable).with_name("ispflow")), "collector", "--listen", "nowhere"],
                            env={**os.environ, "ISPFLOW_DATABASE_URL": database_url}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "ispflow: --listen: 'nowhere' is not ADDRESS:PORT (an IP address, not a host name); write it as")


def test_records_before_a_malformed_set_are_stored_and_the_error_counted(collector, db_engine):
    exporter = synthetic.Exporter(version=10, domain=4)
    batch = flows(12)
    good = [exporter.template_set(synthetic.IPFIX_IPV4), exporter.data_set(synthetic.IPFIX_IPV4, batch, T0 + 400)]
    broken_set = b"\x01\x2c\x00\x40" + bytes(8)  # a set of template 300 claiming 64 bytes, holding 8
    send([exporter.packet(good + [broken_set], T0 + 400, len(batch))], collector.ports()[0])
    assert len(collector.wait_for_flows(db_engine, 12)) == 12
    assert wait_until(lambda: count(db_engine, "select coalesce(sum(decode_errors), 0) from ispflow.exporters") == 1)
    assert count(db_engine, "select flows from ispflow.exporters") == 12
