"""``ispflow search``, ``ispflow who`` and ``ispflow audit verify`` answer like the panel, audited."""
import csv
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ispflow.module_settings import ModuleSettings, save
from ispflow.commands import search as commands
from ispflow.search.export import HEADER
from tests.sample_flows import flow, insert_flows, insert_nat_events, nat_event

ISPFLOW = str(Path(sys.executable).with_name("ispflow"))


@pytest.fixture
def flows(db_engine):
    with db_engine.begin() as conn:
        save(conn, ModuleSettings(timezone="Europe/Prague"))
    with db_engine.connect() as conn:
        insert_flows(conn, [flow(f"2026-01-10T10:0{i}:00Z", "100.64.0.10", "198.51.100.1", dst_port=443 + i,
                                 account="ACC-1") for i in range(5)]
                     + [flow("2026-01-10T10:00:00Z", "192.0.2.8", "192.0.2.9")])
        insert_nat_events(conn, [nat_event("2026-01-10T09:00:00Z", "100.64.0.10", "203.0.113.5", event=16,
                                           port_block_start=2048, port_block_end=4095, account="ACC-1",
                                           service="cgnat")])
        conn.commit()
    return db_engine


def audit_entries(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("select * from ispflow.audit_log order by id")).all()


SEARCH = ["--ip", "100.64.0.10", "--from", "2026-01-10", "--to", "2026-01-10", "--case", "CASE-CLI"]


def test_search_prints_a_table_in_local_time_with_totals(runner, flows):
    result = runner.invoke(commands.search, SEARCH + ["--port", "443-444"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].startswith("2026-01-10T11:01:00+01:00")
    assert "198.51.100.1:444" in lines[1] and "198.51.100.1:443(https)" in lines[2]
    assert lines[-1] == "2 flows, 8400 bytes, 24 packets"


def test_search_csv_has_the_panels_columns_and_its_hash_is_audited(runner, flows):
    result = runner.invoke(commands.search, SEARCH + ["--format", "csv"])
    assert result.exit_code == 0, result.output
    body = result.stdout_bytes
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == HEADER and len(rows) == 6
    [start, entry] = audit_entries(flows)
    assert (start.action, start.row_count, start.export_sha256) == ("export.start", 5, None)
    assert entry.actor.startswith("cli:") and entry.action == "export" and entry.case_ref == "CASE-CLI"
    assert entry.export_sha256 == hashlib.sha256(body).hexdigest() and entry.row_count == 5


def test_search_csv_is_audited_before_its_first_row_leaves(runner, flows, monkeypatch):
    seen = []

    class Watched:
        def __init__(self, out):
            self.out = out

        def write(self, data):
            if not seen:  # what another connection sees when the first byte goes out
                seen.append([e.action for e in audit_entries(flows)])
            return self.out.write(data)

    real = commands.write_csv
    monkeypatch.setattr(commands, "write_csv", lambda dbapi, criteria, out, **kw: real(dbapi, criteria, Watched(out),
                                                                                      **kw))
    assert runner.invoke(commands.search, SEARCH + ["--format", "csv"]).exit_code == 0
    assert seen == [["export.start"]]


@pytest.mark.parametrize("args, message", [
    (["--ip", "100.64.0.300"], "--ip: '100.64.0.300' is not an IPv4 or IPv6 address or CIDR range."),
    (["--protocol", "tcpp"], "--protocol: Unknown protocol name 'tcpp'"),
    (["--from", "2025-01-01"], "--to: The range is longer than the retention period (6 months)"),
    (["--to", "2026-01-01"], "--to: 'To' must be later than 'From'."),
])
def test_search_bad_input_exits_2_with_one_sentence(runner, flows, args, message):
    values = dict(zip(SEARCH[::2], SEARCH[1::2]))
    values.update(dict(zip(args[::2], args[1::2])))
    result = runner.invoke(commands.search, [x for pair in values.items() for x in pair])
    assert result.exit_code == 2
    assert message in result.output
    assert audit_entries(flows) == []


def test_the_installed_command_refuses_bad_input_in_one_line(database_url, flows):
    result = subprocess.run([ISPFLOW, "search", *SEARCH, "--protocol", "nosuch"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "ISPFLOW_DATABASE_URL": database_url})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "ispflow: --protocol: Unknown protocol name 'nosuch'; use a number or a name such as tcp, udp, icmp."]


def test_who_answers_behind_cgnat_and_is_audited(runner, flows):
    result = runner.invoke(commands.who, ["--ip", "203.0.113.5", "--port", "3000", "--at", "2026-01-10 11:00",
                                          "--case", "CASE-W"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "account=ACC-1 service=cgnat private=100.64.0.10:40000 port_block=2048-4095"
    [entry] = audit_entries(flows)
    assert (entry.action, entry.case_ref, entry.criteria["at"]) == ("who", "CASE-W", "2026-01-10T10:00:00+00:00")


def test_who_without_a_holder_exits_1_and_bad_input_exits_2(runner, flows):
    nobody = runner.invoke(commands.who, ["--ip", "192.0.2.1", "--at", "2026-01-10T11:00", "--case", "C"])
    assert nobody.exit_code == 1 and "No subscriber held 192.0.2.1" in nobody.output
    bad = runner.invoke(commands.who, ["--ip", "192.0.2.1", "--at", "soon", "--case", "C"])
    assert bad.exit_code == 2 and "'soon' is not a date-time" in bad.output


def test_audit_verify_exits_0_when_intact_and_1_when_tampered(runner, flows, owner_engine):
    runner.invoke(commands.search, SEARCH)
    runner.invoke(commands.search, SEARCH)
    intact = runner.invoke(commands.audit_group, ["verify"])
    assert intact.exit_code == 0 and "2 entries verified" in intact.output
    with owner_engine.begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text("update ispflow.audit_log set case_ref = 'OTHER' where id = 1"))
    broken = runner.invoke(commands.audit_group, ["verify"])
    assert broken.exit_code == 1 and "Entry 1 was changed" in broken.output


def test_audit_checkpoint_then_verify_names_entries_removed_from_the_end(runner, flows, owner_engine):
    runner.invoke(commands.search, SEARCH)
    runner.invoke(commands.search, SEARCH)
    anchored = runner.invoke(commands.audit_group, ["checkpoint"])
    assert anchored.exit_code == 0 and "Checkpoint: entry 2" in anchored.output
    with owner_engine.begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text("delete from ispflow.audit_log where id = 2"))
    broken = runner.invoke(commands.audit_group, ["verify"])
    assert broken.exit_code == 1
    assert "Audit log broken (removed-end): Entries were removed from the end" in broken.output


def test_audit_verify_checks_a_manifest_given_to_it(runner, flows, owner_engine, tmp_path):
    import json

    runner.invoke(commands.search, SEARCH)
    with flows.connect() as conn:
        head = conn.execute(sa.text("select id, hash from ispflow.audit_log")).one()
    manifest = tmp_path / "handed-over.manifest.json"
    manifest.write_text(json.dumps({"audit_head": {"id": head.id, "hash": head.hash}}))
    assert runner.invoke(commands.audit_group, ["verify", "--manifest", str(manifest)]).exit_code == 0
    with owner_engine.begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text("delete from ispflow.audit_log"))
    broken = runner.invoke(commands.audit_group, ["verify", "--manifest", str(manifest)])
    assert broken.exit_code == 1 and "handed-over.manifest.json" in broken.output
