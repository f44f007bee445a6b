"""CSV exports: the decree's columns, a hash that matches the manifest, large ones on the worker."""
import csv
import hashlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ispflow.app_state import settings
from ispflow.module_settings import ModuleSettings, save
from ispflow.search import jobs
from ispflow.search.export import HEADER
from ispflow.signals import export_made
from tests.sample_flows import flow, insert_exporter, insert_flows
from ispflow.subscribers import Assignment, save_assignments
from ispflow.testing import csrf_token
from ispflow.worker import InProcessJobWorker


@pytest.fixture
def export_dir(app):
    """Where the panel keeps exports; a worker running in the panel's app writes there too."""
    return Path(app.config["ISPFLOW_EXPORT_DIR"])


@pytest.fixture
def flows(db_engine):
    with db_engine.begin() as conn:
        save(conn, ModuleSettings(timezone="Europe/Prague"))
    with Session(db_engine) as session:
        save_assignments(session, [Assignment.parse("ACC-Šárka", "fiber-100", "100.64.0.10", "2026-01-01T00:00Z"),
                                   Assignment.parse("ACC-2", "dsl", "2001:db8::/64", "2026-01-01T00:00Z")])
        session.commit()
    with db_engine.connect() as conn:
        insert_exporter(conn, "192.0.2.1", "edge-ž")
        insert_flows(conn, [
            flow("2026-01-10T10:00:00.250Z", "100.64.0.10", "198.51.100.1", seconds=1.5, account="ACC-Šárka",
                 service="fiber-100", bytes=5000, packets=7),
            flow("2026-01-10T10:05:00Z", "2001:db8::10", "2a00:1450::1", protocol=17, src_port=5353, dst_port=53,
                 account="ACC-2", service="dsl"),
            flow("2026-01-10T10:06:00Z", "192.0.2.200", "192.0.2.201"),
        ])
        conn.commit()
    return db_engine


def start_export(client, **fields):
    page = client.get("/netflow/search")
    data = {"csrf_token": csrf_token(page), "date_from": "2026-01-10", "date_to": "2026-01-10",
            "case_ref": "CASE-9", "action": "export", "account": "", "ip": ""}
    data.update(fields)
    return client.post("/netflow/search", data=data)


def download(client, url) -> bytes:
    with client.get(url) as response:  # closes the streamed file
        assert response.status_code == 200
        return response.get_data()


def finished_export(client, response):
    status = client.get(response.headers["Location"]).data.decode()
    body = download(client, status.split('id="download" href="')[1].split('"')[0])
    manifest = json.loads(download(client, status.split('id="manifest" href="')[1].split('"')[0]))
    return body, manifest


def test_a_small_export_has_the_decree_columns_local_times_and_a_bom(auth, client, flows):
    auth.login("compliance", username="olga")
    body, _ = finished_export(client, start_export(client, ip="100.64.0.0/10"))
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert list(rows[0]) == HEADER
    assert HEADER[:6] == ["connection_type", "account_id", "service_id", "start", "end", "duration_s"]
    assert rows == [{
        "connection_type": "IPv4/TCP", "account_id": "ACC-Šárka", "service_id": "fiber-100",
        "start": "2026-01-10T11:00:00.250+01:00", "end": "2026-01-10T11:00:01.750+01:00", "duration_s": "1.500",
        "src_addr": "100.64.0.10", "src_port": "51000", "dst_addr": "198.51.100.1", "dst_port": "443",
        "protocol": "6", "bytes": "5000", "packets": "7", "event_status": "success", "direction": "out",
        "in_if": "2", "out_if": "1", "exporter": "edge-ž", "post_nat_src_addr": "",
        "post_nat_src_port": "", "post_nat_dst_addr": "", "post_nat_dst_port": ""}]


def test_ipv6_rows_export_with_plain_addresses(auth, client, flows):
    auth.login("compliance")
    body, _ = finished_export(client, start_export(client, ip="2001:db8::/32"))
    [row] = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert (row["connection_type"], row["src_addr"], row["dst_port"], row["event_status"]) == (
        "IPv6/UDP", "2001:db8::10", "53", "")


def test_the_sha256_of_the_file_matches_the_manifest_the_record_and_the_audit_log(auth, client, flows):
    auth.login("compliance", username="olga")
    body, manifest = finished_export(client, start_export(client, account="ACC-2"))
    digest = hashlib.sha256(body).hexdigest()
    assert manifest["sha256"] == digest
    assert (manifest["row_count"], manifest["case_ref"], manifest["requested_by"]) == (1, "CASE-9", "olga")
    assert manifest["criteria"]["account"] == "ACC-2" and manifest["columns"] == HEADER
    with flows.connect() as conn:
        assert conn.execute(sa.text("select sha256 from ispflow.exports")).scalar() == digest
        entries = conn.execute(sa.text("select action, case_ref, row_count, export_sha256, criteria "
                                       "from ispflow.audit_log order by id")).all()
    assert [(e.action, e.case_ref, e.row_count, e.export_sha256) for e in entries] == [
        ("export.start", "CASE-9", 1, None), ("export", "CASE-9", 1, digest),
        ("export.download", "CASE-9", 1, digest)]
    assert entries[0].criteria["account"] == "ACC-2"
    assert "2001:db8::10" not in json.dumps([e.criteria for e in entries])


def test_the_manifest_anchors_the_audit_log_at_the_exports_entry(auth, client, flows):
    auth.login("compliance", username="olga")
    _, manifest = finished_export(client, start_export(client, account="ACC-2"))
    with flows.connect() as conn:
        entry = conn.execute(sa.text("select id, hash from ispflow.audit_log where action = 'export'")).one()
    assert manifest["audit_head"] == {"id": entry.id, "hash": entry.hash}


def test_an_export_is_audited_before_its_first_row_is_written(auth, client, flows, monkeypatch):
    from ispflow.search import jobs

    seen = []
    real = jobs.write_csv

    def watched(dbapi, criteria, out, **kw):
        with flows.connect() as conn:
            seen.extend(conn.execute(sa.text("select action from ispflow.audit_log order by id")).scalars())
        return real(dbapi, criteria, out, **kw)

    monkeypatch.setattr(jobs, "write_csv", watched)
    auth.login("compliance", username="olga")
    finished_export(client, start_export(client, account="ACC-2"))
    assert seen == ["export.start"]


def test_an_officer_cannot_open_another_officers_export(auth, client, flows):
    auth.login("compliance", username="olga")
    location = start_export(client, account="ACC-2").headers["Location"]
    client.get("/logout")
    auth.login("compliance", username="petr")
    assert client.get(location).status_code == 404
    assert client.get(location + "/download").status_code == 404


@pytest.mark.parametrize("role", ["admin", "technician", "customer"])
def test_other_roles_cannot_reach_exports(auth, client, flows, role):
    auth.login(role)
    assert client.get("/netflow/exports/1").status_code == 403
    assert client.get("/netflow/exports/1/download").status_code == 403


def test_a_large_export_runs_on_a_real_rq_worker_with_progress_and_a_download(
        app, auth, client, flows, redis_conn, export_dir):
    count = jobs.SYNC_EXPORT_ROWS + 2000
    start = datetime(2026, 2, 1, tzinfo=timezone.utc)
    with flows.connect() as conn:
        insert_flows(conn, [flow(start + timedelta(seconds=i), "100.64.7.7", f"198.51.{i % 200}.{i % 250}",
                                 src_port=1024 + i % 60000, account="ACC-BIG") for i in range(count)])
        conn.commit()
    auth.login("compliance", username="olga")
    response = start_export(client, ip="100.64.7.7", date_from="2026-02-01", date_to="2026-02-02")
    waiting = client.get(response.headers["Location"]).data.decode()
    assert "<progress" in waiting and "queued" in waiting and 'id="download"' not in waiting

    with app.app_context():
        assert InProcessJobWorker(settings()).work(burst=True)

    body, manifest = finished_export(client, response)
    lines = body.decode("utf-8-sig").splitlines()
    assert len(lines) == count + 1 and manifest["row_count"] == count
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert [p.name for p in sorted(export_dir.iterdir())] == ["ispflow-export-1.csv", "ispflow-export-1.manifest.json"]
    with flows.connect() as conn:
        record = conn.execute(sa.text("select state, rows_done, row_count from ispflow.exports")).one()
    assert tuple(record) == ("finished", count, count)


def test_a_small_export_sends_export_made_in_the_panel_process(auth, client, flows):
    heard = []

    def receiver(sender, **details):
        heard.append((sender, details))

    auth.login("compliance", username="olga")
    with export_made.connected_to(receiver):
        _, manifest = finished_export(client, start_export(client, ip="100.64.0.0/10"))
    assert heard == [("olga", {"export_id": 1, "case_ref": "CASE-9", "row_count": 1, "sha256": manifest["sha256"]})]


FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+420123456", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def test_cells_a_spreadsheet_would_run_as_a_formula_are_neutralised_and_the_manifest_says_how(
        auth, client, db_engine):
    with db_engine.connect() as conn:
        insert_exporter(conn, "192.0.2.1", "=cmd|' /C calc'!A0")
        insert_flows(conn, [flow("2026-01-10T10:00:00Z", "100.64.0.10", f"198.51.100.{n}", account=text,
                                 service="fiber-100") for n, text in enumerate(FORMULAS + ["ACC-1"], 1)])
        conn.commit()
    auth.login("compliance")
    body, manifest = finished_export(client, start_export(client, ip="100.64.0.10"))
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert sorted(row["account_id"] for row in rows) == sorted(["'" + text for text in FORMULAS] + ["ACC-1"])
    assert {row["exporter"] for row in rows} == {"'=cmd|' /C calc'!A0"}
    assert "\"'=HYPERLINK(" in body.decode("utf-8-sig")  # always quoted
    assert "single quote" in manifest["formula_neutralisation"]
    assert "account_id" in manifest["formula_neutralisation"]


def test_export_files_and_their_folder_are_private(auth, client, flows, export_dir):
    auth.login("compliance")
    finished_export(client, start_export(client, ip="100.64.0.0/10"))
    assert export_dir.stat().st_mode & 0o777 == 0o700
    files = list(export_dir.iterdir())
    assert files and all(path.stat().st_mode & 0o777 == 0o600 for path in files)
