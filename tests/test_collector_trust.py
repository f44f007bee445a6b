"""Only trusted exporters' flows are stored; trust and directory changes reach a running collector at once."""
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ispflow.cli import subscribers_import
from ispflow.collector import trust
from tests import synthetic
from ispflow.database import engine_for
from ispflow.testing import RunningCollector

from .netflow_tools import send
from .tcp_proxy import TcpProxy
from .test_collector_runtime import T0, count, flows, v9_packets, wait_until


def exporter_row(engine, address="127.0.0.1"):
    with engine.connect() as conn:
        return conn.execute(sa.text("select * from ispflow.exporters where address = cast(:a as inet)"),
                            {"a": address}).mappings().first()


def audit_actions(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("select action, actor, criteria from ispflow.audit_log order by id")).all()


def started(database_url, tmp_path, trusted=(), **options):
    """A collector that reloads nothing periodically (trust is never reloaded periodically, the
    directory every hour), once it listens: what reaches it came by notification."""
    running = RunningCollector(database_url, tmp_path, directory_refresh=3600, **options)
    running.start(trusted=trusted)
    assert running.listening.wait(10)
    return running


def test_an_untrusted_senders_packets_are_counted_and_dropped(database_url, db_engine, tmp_path):
    running = started(database_url, tmp_path)
    try:
        send(v9_packets(flows(20)), running.ports()[0])
        assert wait_until(lambda: (exporter_row(db_engine) or {}).get("packets", 0) >= 1)
        assert count(db_engine) == 0
        row = exporter_row(db_engine)
        assert row["trusted"] is False
        assert row["dropped"]["untrusted_packets"] == row["packets"] >= 1
    finally:
        running.stop()


def test_an_exporter_trusted_while_the_collector_runs_is_stored_from_its_next_packet(
        database_url, db_engine, tmp_path):
    running = started(database_url, tmp_path)
    try:
        send(v9_packets(flows(5)), running.ports()[0])
        assert wait_until(lambda: exporter_row(db_engine) is not None)
        with db_engine.begin() as conn:
            assert trust.trust(conn, "127.0.0.1", actor="cli:alice", role="admin")
        assert wait_until(lambda: running.trusted and "127.0.0.1" in running.trusted)
        batch = flows(30, seed=2)
        send(v9_packets(batch), running.ports()[0])
        assert len(running.wait_for_flows(db_engine, len(batch))) == len(batch)
        assert [(a.action, a.actor, a.criteria) for a in audit_actions(db_engine)] == [
            ("exporter.trust", "cli:alice", {"address": "127.0.0.1"})]
    finally:
        running.stop()


def test_an_untrusted_exporter_is_dropped_from_its_next_packet(collector, db_engine):
    with db_engine.begin() as conn:
        assert trust.untrust(conn, "127.0.0.1", actor="cli:alice", role="admin")
    assert wait_until(lambda: "127.0.0.1" not in collector.trusted)
    send(v9_packets(flows(10)), collector.ports()[0])
    assert wait_until(lambda: exporter_row(db_engine)["dropped"].get("untrusted_packets", 0) >= 1)
    assert count(db_engine) == 0
    assert audit_actions(db_engine)[-1].action == "exporter.untrust"


def test_a_provisioned_router_is_trusted_by_its_address(database_url, db_engine, tmp_path):
    with db_engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.routers (name, vendor, host, username, secret, provisioned_at) "
            "values ('edge', 'mikrotik', '127.0.0.1', 'admin', '\\x00', now())"))
    running = started(database_url, tmp_path)
    try:
        batch = flows(25)
        send(v9_packets(batch), running.ports()[0])
        assert len(running.wait_for_flows(db_engine, len(batch))) == len(batch)
        assert exporter_row(db_engine)["trusted"] is False  # trusted as a router, not by an admin
    finally:
        running.stop()


def test_trust_on_first_use_trusts_the_first_sender_while_none_is_trusted_and_audits_it(
        database_url, db_engine, tmp_path):
    running = started(database_url, tmp_path, trust_first=True)
    try:
        batch = flows(25)
        send(v9_packets(batch), running.ports()[0])
        assert len(running.wait_for_flows(db_engine, len(batch))) == len(batch)
        assert wait_until(lambda: (exporter_row(db_engine) or {}).get("trusted"))
        [entry] = audit_actions(db_engine)
        assert entry.action == "exporter.trust" and entry.actor.startswith("collector ")
        assert entry.criteria["address"] == "127.0.0.1"
    finally:
        running.stop()


def test_trust_on_first_use_trusts_nobody_once_an_exporter_is_trusted(database_url, db_engine, tmp_path):
    running = started(database_url, tmp_path, trusted=("192.0.2.1",), trust_first=True)
    try:
        send(v9_packets(flows(10)), running.ports()[0])
        assert wait_until(lambda: (exporter_row(db_engine) or {}).get("packets", 0) >= 1)
        assert count(db_engine) == 0
        assert exporter_row(db_engine)["trusted"] is False
    finally:
        running.stop()


def test_a_subscriber_import_reaches_the_running_collector_before_flows_sent_at_once(
        database_url, db_engine, tmp_path, runner):
    running = started(database_url, tmp_path, trusted=("127.0.0.1",))
    try:
        csv = tmp_path / "directory.csv"
        csv.write_text("account,service,prefix,valid_from,valid_to\nPOOL-A,internet,100.64.0.0/22,2025-01-01T00:00:00Z,\n")
        result = runner.invoke(subscribers_import, [str(csv)])
        assert result.exit_code == 0, result.output
        batch = flows(40, seed=3)
        send(v9_packets(batch), running.ports()[0])
        rows = running.wait_for_flows(db_engine, len(batch))
        assert len(rows) == len(batch)
        assert {r["account"] for r in rows} == {"POOL-A"}
    finally:
        running.stop()


def test_a_flood_of_templates_is_refused_past_the_cap_and_the_exporters_flows_are_still_stored(collector, db_engine):
    flood = synthetic.Exporter(9, domain=7)
    templates = [synthetic.TemplateSpec(256 + i, tuple((100 + k, 4) for k in range(40))) for i in range(1000)]
    packets = [flood.packet([flood.template_set(*templates[i:i + 8])], T0) for i in range(0, len(templates), 8)]
    batch = flows(60, seed=4)
    send(packets + v9_packets(batch), collector.ports()[0])
    assert len(collector.wait_for_flows(db_engine, len(batch))) == len(batch)
    cap = collector.decoder.limits.templates_per_domain
    assert wait_until(lambda: exporter_row(db_engine)["dropped"].get("refused_templates") == 1000 - cap)
    assert exporter_row(db_engine)["decode_errors"] == 0


def test_a_collector_started_while_the_database_is_down_keeps_the_last_known_trust(
        database_url, db_engine, tmp_path):
    first = started(database_url, tmp_path, trusted=("127.0.0.1",))
    first.stop()
    url = make_url(database_url)
    proxy = TcpProxy(url.host, url.port or 5432)
    through_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    proxy.cut()
    running = RunningCollector(through_proxy, tmp_path)
    running.start(trusted=())
    try:
        send(v9_packets(flows(30)), running.ports()[0])
        assert wait_until(lambda: len(running.spool) > 0), "nothing was spooled"
        assert running.counters["untrusted_packets"] == 0
        proxy.restore()
        assert len(running.wait_for_flows(db_engine, 30, timeout=30)) == 30
    finally:
        running.stop()
        proxy.close()
        engine_for(through_proxy).dispose()
