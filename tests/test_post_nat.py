"""Flow records that carry their NAT translation (MikroTik IPFIX 225/226, Cisco ASA NSEL 40001-40004):
the collector keeps it, and Who, the search and the export answer from it. Packets go through a
running collector over UDP."""
import csv
import io
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ispflow.commands import search as commands
from ispflow.search.export import HEADER
from ispflow.subscribers import Assignment, save_assignments
from ispflow.testing import RunningCollector, csrf_token
from tests import synthetic

from .netflow_tools import send

T = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
MIKROTIK_PUBLIC = "198.51.100.200"
ASA_PUBLIC = "198.51.100.201"


def record(src, src_port, dst, dst_port, protocol=6, **translation):
    return {"src": src, "src_port": src_port, "dst": dst, "dst_port": dst_port, "protocol": protocol,
            "tcp_flags": 0x1B if protocol == 6 else 0, "packets": 10, "bytes": 4000, "in_if": 3, "out_if": 4,
            "start": T.timestamp() - 5, "end": T.timestamp(), **translation}


MIKROTIK_RECORDS = [
    record("10.10.8.197", 40123, "93.184.216.34", 443, public=MIKROTIK_PUBLIC),
    record("10.10.8.198", 40200, "192.0.2.53", 53, protocol=17, public=MIKROTIK_PUBLIC),
    record("93.184.216.34", 443, MIKROTIK_PUBLIC, 40123, post_dst="10.10.8.197"),   # the reply, un-NATed
    record("10.10.8.199", 40300, "192.0.2.80", 80),                                 # not translated
]
ASA_RECORDS = [
    record("10.20.0.5", 51000, "203.0.113.80", 443, public=ASA_PUBLIC, public_port=61001),
    record("10.20.0.6", 51000, "203.0.113.80", 443, public=ASA_PUBLIC, public_port=61002),
]


@pytest.fixture
def nat_flows(db_engine, database_url, tmp_path):
    with Session(db_engine) as session:
        save_assignments(session, [
            Assignment.parse("ACC-M1", "fiber", "10.10.8.197", "2026-01-01T00:00:00Z"),
            Assignment.parse("ACC-M2", "fiber", "10.10.8.198", "2026-01-01T00:00:00Z"),
            Assignment.parse("ACC-N1", "cable", "10.20.0.5", "2026-01-01T00:00:00Z"),
            Assignment.parse("ACC-N2", "cable", "10.20.0.6", "2026-01-01T00:00:00Z"),
            Assignment.parse("ACC-NATPOOL", "cgnat", "198.51.100.0/24", "2026-01-01T00:00:00Z"),
        ])
        session.commit()
    running = RunningCollector(database_url, tmp_path)
    running.start()
    try:
        mikrotik = synthetic.Exporter(version=10, domain=0, boot_time=T.timestamp() - 86400)
        asa = synthetic.Exporter(version=9, domain=1, boot_time=T.timestamp() - 86400)
        send(mikrotik.packets(MIKROTIK_RECORDS, synthetic.MIKROTIK_IPFIX, export_time=T.timestamp())
             + asa.packets(ASA_RECORDS, synthetic.NSEL_V9, export_time=T.timestamp()), running.ports()[0])
        running.wait_for_flows(db_engine, len(MIKROTIK_RECORDS) + len(ASA_RECORDS))
    finally:
        running.stop()
    return db_engine


def stored(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select host(src_addr) src, src_port, host(post_nat_src_addr) post_src, post_nat_src_port post_src_port, "
            "host(post_nat_dst_addr) post_dst, post_nat_dst_port post_dst_port, account from ispflow.flow_records")).all()
    return {(row.src, row.src_port): row for row in rows}


def test_mikrotik_records_keep_the_post_nat_addresses_and_attribution_stays_pre_nat(nat_flows):
    rows = stored(nat_flows)
    assert (rows["10.10.8.197", 40123].post_src, rows["10.10.8.197", 40123].account) == (MIKROTIK_PUBLIC, "ACC-M1")
    assert rows["10.10.8.198", 40200].post_src == MIKROTIK_PUBLIC
    assert rows["93.184.216.34", 443].post_dst == "10.10.8.197"
    assert rows["10.10.8.199", 40300].post_src is None and rows["10.10.8.199", 40300].post_dst is None
    assert {row.post_src_port for row in rows.values() if row.src.startswith("10.10.")} == {None}


def test_nsel_records_keep_the_translated_address_and_port(nat_flows):
    rows = stored(nat_flows)
    assert (rows["10.20.0.5", 51000].post_src, rows["10.20.0.5", 51000].post_src_port) == (ASA_PUBLIC, 61001)
    assert (rows["10.20.0.6", 51000].post_src, rows["10.20.0.6", 51000].post_src_port) == (ASA_PUBLIC, 61002)
    assert rows["10.20.0.6", 51000].account == "ACC-N2"


def who(runner, *args):
    return runner.invoke(commands.who, ["--at", T.isoformat(), "--case", "CASE-NAT", *args])


def test_who_lists_every_candidate_and_why_when_the_record_cannot_single_one_out(nat_flows, runner):
    result = who(runner, "--ip", MIKROTIK_PUBLIC)
    lines = result.output.splitlines()
    assert lines[0] == (f"2 candidates: 2 private addresses used {MIKROTIK_PUBLIC} at that moment, by the flow "
                        "records matching the address; give the public port or the remote address to narrow it.")
    assert sorted(line.split()[0] for line in lines[1:]) == ["account=ACC-M1", "account=ACC-M2"]
    assert "private=10.10.8.198:40200 public_port=not-reported remote=192.0.2.53" in result.output


def test_who_singles_out_the_subscriber_by_the_remote_side(nat_flows, runner):
    result = who(runner, "--ip", MIKROTIK_PUBLIC, "--remote", "192.0.2.53")
    assert result.output.startswith("account=ACC-M2 service=fiber private=10.10.8.198:40200")


def test_who_singles_out_the_subscriber_by_the_public_port_a_reply_reports(nat_flows, runner):
    result = who(runner, "--ip", MIKROTIK_PUBLIC, "--port", "40123")
    assert result.output.startswith("account=ACC-M1 service=fiber private=10.10.8.197")


def test_who_singles_out_the_subscriber_by_an_nsel_translated_port(nat_flows, runner):
    result = who(runner, "--ip", ASA_PUBLIC, "--port", "61002")
    assert result.output.startswith("account=ACC-N2 service=cable private=10.20.0.6:51000 public_port=61002")


def test_a_port_no_record_reports_is_said_not_guessed(nat_flows, runner):
    result = who(runner, "--ip", MIKROTIK_PUBLIC, "--port", "9999", "--remote", "192.0.2.53")
    assert result.output.splitlines() == [
        "account=ACC-M2 service=fiber private=10.10.8.198:40200 public_port=not-reported remote=192.0.2.53 "
        "source=flow-records",
        "note: no record reports public port 9999; the 1 matching record(s) carry no post-NAT port, "
        "so the port cannot tell them apart.",
    ]


def test_the_who_page_lists_the_candidates_and_audits_their_number(nat_flows, auth, client):
    auth.login("compliance")
    page = client.get("/netflow/who")
    html = client.post("/netflow/who", data={"csrf_token": csrf_token(page), "case_ref": "CASE-NAT",
                                             "ip": MIKROTIK_PUBLIC, "at": "2026-03-02 10:00:00"}).data.decode()
    assert "cannot be tied to one" in html and "give the public port or the remote address" in html
    assert "<strong>ACC-M1</strong>" in html and "<strong>ACC-M2</strong>" in html
    with nat_flows.connect() as conn:
        assert conn.execute(sa.text("select row_count from ispflow.audit_log")).scalar() == 2


def test_searching_the_public_address_finds_the_translated_flows_and_exports_the_translation(nat_flows, runner):
    result = runner.invoke(commands.search, ["--ip", MIKROTIK_PUBLIC, "--from", "2026-03-02", "--to", "2026-03-02",
                                             "--case", "CASE-NAT", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout_bytes.decode("utf-8-sig"))))
    assert HEADER[-4:] == ["post_nat_src_addr", "post_nat_src_port", "post_nat_dst_addr", "post_nat_dst_port"]
    assert sorted((r["src_addr"], r["post_nat_src_addr"], r["post_nat_dst_addr"]) for r in rows) == [
        ("10.10.8.197", MIKROTIK_PUBLIC, ""),
        ("10.10.8.198", MIKROTIK_PUBLIC, ""),
        ("93.184.216.34", "", "10.10.8.197"),
    ]


def test_a_zero_or_unchanged_post_nat_address_is_no_translation():
    from ispflow.collector.decoder import FlowDecoder

    decoder = FlowDecoder()
    exporter = synthetic.Exporter(version=10, domain=0, boot_time=T.timestamp() - 86400)
    records = [record("10.10.8.197", 1, "192.0.2.1", 2, public="0.0.0.0"),
               record("10.10.8.197", 3, "192.0.2.1", 4, public="10.10.8.197", post_dst="192.0.2.1")]
    for packet in exporter.packets(records, synthetic.MIKROTIK_IPFIX, export_time=T.timestamp()):
        decoder.feed(packet, "192.0.2.254", T.timestamp())
    flows, _ = decoder.drain()
    assert flows.post_nat_src_family.tolist() == [0, 0]
    assert flows.post_nat_dst_family.tolist() == [0, 0]


def test_the_search_page_shows_the_translation_next_to_the_address(nat_flows, auth, client):
    auth.login("compliance")
    page = client.get("/netflow/search")
    html = client.post("/netflow/search", data={"csrf_token": csrf_token(page), "case_ref": "CASE-NAT",
                                                "ip": MIKROTIK_PUBLIC, "date_from": "2026-03-02", "date_to": "2026-03-02",
                                                "action": "search"}).data.decode()
    assert f"NAT → {MIKROTIK_PUBLIC}</span>" in html
    assert "NAT → 10.10.8.197</span>" in html
