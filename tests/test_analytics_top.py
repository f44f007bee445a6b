"""Top reports and the ``ispflow report`` command."""
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from ispflow.analytics import rollups, top
from ispflow.search.criteria import parse_network
from tests.sample_flows import flow, insert_flows, utc
from ispflow.subscribers import Assignment, save_assignments

ISPFLOW = str(Path(sys.executable).with_name("ispflow"))
DAY = utc("2026-03-02T00:00:00Z")


@pytest.fixture
def traffic(db_engine):
    """A day: ACC-1 streams from one server, ACC-2 browses and resolves names, some transit."""
    rows = []
    for hour in range(6):
        at = DAY + timedelta(hours=hour, minutes=1)
        rows.append(flow(at, "203.0.113.5", "100.64.0.1", src_port=1935, dst_port=50000, bytes=9_000_000,
                         direction="in", account="ACC-1", service="home"))
        for i in range(5):
            rows.append(flow(at, "100.64.0.2", f"198.51.100.{i + 1}", src_port=40000 + i, dst_port=443, bytes=10_000,
                             direction="out", account="ACC-2", service="home"))
            rows.append(flow(at, "100.64.0.2", "192.0.2.53", src_port=41000 + i, dst_port=53, protocol=17, bytes=100,
                             direction="out", account="ACC-2", service="home"))
    with db_engine.connect() as conn:
        save_assignments(conn, [Assignment.parse("ACC-1", "home", "100.64.0.1", "2026-01-01T00:00Z"),
                                Assignment.parse("ACC-2", "home", "100.64.0.2", "2026-01-01T00:00Z")])
        insert_flows(conn, rows)
        conn.commit()
    rollups.update(db_engine, now=DAY + timedelta(hours=3, minutes=15))   # hours 0-2 rolled up, 3-5 raw
    return rows


def _report(engine, by, order="bytes", **kwargs):
    with engine.connect() as conn:
        return top.report(conn, by, DAY, DAY + timedelta(days=1), order, **kwargs)


def test_top_sources_by_bytes_over_roll_ups_and_raw_flows(db_engine, traffic):
    result = _report(db_engine, "source")
    assert [(r.label, r.bytes) for r in result.rows[:2]] == [("203.0.113.5", 54_000_000), ("100.64.0.2", 303_000)]
    assert result.total.bytes == sum(r["bytes"] for r in traffic)


def test_ranking_by_flows_puts_the_chatty_subscriber_first(db_engine, traffic):
    assert _report(db_engine, "subscriber", "flows").rows[0].label == "ACC-2"
    assert _report(db_engine, "subscriber", "bytes").rows[0].label == "ACC-1"


def test_applications_are_classified_from_port_and_protocol(db_engine, traffic):
    rows = {r.label: r.bytes for r in _report(db_engine, "application").rows}
    assert rows == {"streaming": 54_000_000, "web": 300_000, "DNS": 3_000}


def test_protocol_statistics_name_the_service(db_engine, traffic):
    labels = [r.label for r in _report(db_engine, "protocol").rows]
    assert "tcp/1935" in labels[0] and "https (tcp/443)" in labels and "domain (udp/53)" in labels


def test_conversations_pair_both_ends(db_engine, traffic):
    first = _report(db_engine, "conversation").rows[0]
    assert first.key == ("203.0.113.5", "100.64.0.1") and first.flows == 6


def test_an_account_report_holds_only_that_accounts_traffic(db_engine, traffic):
    result = _report(db_engine, "destination", account="ACC-2")
    assert "100.64.0.1" not in {r.label for r in result.rows}
    assert result.total.bytes == 6 * 5 * 10_100


def test_an_account_report_leaves_out_what_its_address_did_for_someone_else(db_engine, traffic):
    with db_engine.connect() as conn:   # 100.64.0.2 passed to ACC-3 at 03:00; flows stay stamped
        conn.exec_driver_sql("update ispflow.ip_assignments set valid_to = '2026-03-02T03:00Z' "
                             "where account = 'ACC-2'")
        conn.commit()
    assert _report(db_engine, "destination", account="ACC-2").total.bytes == 3 * 5 * 10_100


def test_an_address_report_reads_both_sides_once(db_engine, traffic):
    result = _report(db_engine, "destination", network=parse_network("100.64.0.1"))
    assert [(r.label, r.bytes) for r in result.rows] == [("100.64.0.1", 54_000_000)]


def test_unknown_ports_are_other_applications():
    assert top.application(6, 31337) == "other"
    assert top.application(50, 0) == "VPN"


def run(database_url, *args):
    return subprocess.run([ISPFLOW, "report", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ISPFLOW_DATABASE_URL": database_url})


def test_report_bandwidth_prints_series_and_statistics_as_json(database_url, traffic):
    result = run(database_url, "bandwidth", "--account", "ACC-1", "--from", "2026-03-02T00:00Z",
                 "--to", "2026-03-02T06:00Z", "--step", "30m", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["time"]) == 12 and data["step_seconds"] == 1800
    assert data["stats"]["in"]["volume_bytes"] == 54_000_000


def test_report_bandwidth_table_shows_decimal_rates(database_url, traffic):
    result = run(database_url, "bandwidth", "--network", "--from", "2026-03-02T00:00Z", "--to", "2026-03-02T01:00Z")
    assert result.returncode == 0, result.stderr
    assert "Mbit/s" in result.stdout and "95th percentile" in result.stdout


def test_report_bandwidth_of_an_exporter_interface(database_url, db_engine, traffic):
    from tests.sample_flows import insert_exporter

    with db_engine.connect() as conn:
        insert_exporter(conn, "192.0.2.1", "edge-1")   # id 1, the flows' exporter
        conn.commit()
    result = run(database_url, "bandwidth", "--exporter", "192.0.2.1", "--interface", "2", "--from",
                 "2026-03-02T00:00Z", "--to", "2026-03-02T06:00Z", "--format", "csv")
    assert result.returncode == 0, result.stderr
    totals = {line.split(",")[0]: line.split(",")[1] for line in result.stdout.splitlines()[-2:]}
    # Every generated flow entered on interface 2 and left on 1.
    assert totals == {"in": "54303000", "out": "0"}


def test_report_bandwidth_needs_exactly_one_subject(database_url):
    result = run(database_url, "bandwidth", "--network", "--account", "A", "--from", "2026-03-02", "--to", "2026-03-03")
    assert result.returncode == 2 and result.stderr.startswith("ispflow: give exactly one of")


def test_report_top_as_csv(database_url, traffic):
    result = run(database_url, "top", "--by", "application", "--from", "2026-03-02", "--to", "2026-03-02",
                 "--limit", "2", "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == ["rank,application,bytes,packets,flows", "1,streaming,54000000,72,6",
                                              "2,web,300000,360,30"]


def test_report_usage_gives_the_month_per_account(database_url, traffic):
    result = run(database_url, "usage", "--month", "2026-03", "--format", "json")
    assert result.returncode == 0, result.stderr
    usage = {row["account"]: row for row in json.loads(result.stdout)}
    assert usage["ACC-1"]["bytes_in"] == 54_000_000 and usage["ACC-2"]["bytes_out"] == 303_000


def test_an_accounts_talkers_come_from_its_roll_ups_once_rolled_up(db_engine, traffic):
    before = _report(db_engine, "destination", account="ACC-2")
    rollups.update(db_engine, now=DAY + timedelta(days=1, hours=1))   # every hour rolled up
    after = _report(db_engine, "destination", account="ACC-2")
    assert [(r.key, r.bytes, r.flows) for r in after.rows] == [(r.key, r.bytes, r.flows) for r in before.rows]
    assert after.total == before.total and not after.exact
    with db_engine.connect() as conn:
        conn.exec_driver_sql("delete from ispflow.rollup_account_talkers_1h")
        assert top.report(conn, "destination", DAY, DAY + timedelta(days=1), account="ACC-2").total.bytes == 0


def test_a_ranking_returns_the_limit_the_remainder_and_the_total_of_everything(db_engine, traffic):
    rollups.update(db_engine, now=DAY + timedelta(days=1, hours=1))
    result = _report(db_engine, "destination", "flows", limit=2)
    assert [r.label for r in result.rows] == ["192.0.2.53", "100.64.0.1"]
    assert result.total.bytes == sum(r["bytes"] for r in traffic)
    assert result.total.flows == len(traffic)
