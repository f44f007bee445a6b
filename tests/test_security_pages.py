"""The security view, its thresholds page and ``ispflow findings``."""
import csv
import io
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa

from ispflow.geoip import GeoIP
from tests.sample_flows import insert_flows
from ispflow.security import settings as security_settings
from ispflow.security.commands import findings
from ispflow.security.findings import analyse_period
from ispflow.testing import csrf_token

from . import security_traffic as t

PERIOD = "/netflow/security?date_from=2026-01-10&date_to=2026-01-10"


@pytest.fixture
def brute_force(db_engine):
    """The generated SSH password guessing, analysed."""
    with db_engine.connect() as conn:
        insert_flows(conn, [r for r in t.traffic() if r["src_addr"] == t.BRUTE])
        conn.commit()
    analyse_period(db_engine, t.HOUR, t.HOUR + timedelta(hours=1), GeoIP(), now=t.HOUR + timedelta(hours=2))
    return db_engine


def test_technicians_see_findings_with_evidence_but_no_link_to_flows(auth, client, brute_force):
    auth.login("technician")
    page = client.get(PERIOD).data.decode()
    assert "Brute force" in page and t.BRUTE in page and "attempts=60" in page
    assert "/netflow/search?" not in page
    assert "No GeoIP database configured" in page


def test_compliance_officers_get_a_link_to_the_audited_search(auth, client, brute_force):
    auth.login("compliance")
    page = client.get(PERIOD).data.decode()
    link = page[page.index('href="/netflow/search?') + 6:]
    query = parse_qs(urlparse(link[:link.index('"')].replace("&amp;", "&")).query)
    assert query["ip"] == [t.BRUTE] and query["peer"] == [t.BRUTE_TARGET] and query["port"] == ["22"]


def test_the_view_filters_by_kind(auth, client, brute_force):
    auth.login("admin")
    assert t.BRUTE not in client.get(PERIOD + "&kind=scan").data.decode()


def test_a_bad_period_is_explained(auth, client):
    auth.login("admin")
    response = client.get("/netflow/security?date_from=yesterday&date_to=2026-01-10")
    assert response.status_code == 400 and "is not a date-time" in response.data.decode()


def test_admins_change_thresholds_and_the_change_is_audited(auth, client, db_engine):
    auth.login("admin")
    page = client.get("/netflow/security/settings")
    data = {f: v for f, v in security_settings.SecuritySettings().__dict__.items()}
    data = {k: ", ".join(map(str, v)) if isinstance(v, tuple) else v for k, v in data.items()}
    data.update(csrf_token=csrf_token(page), scan_min_targets=250, unexpected_countries="kp, ir")
    assert client.post("/netflow/security/settings", data=data).status_code == 302
    with db_engine.connect() as conn:
        saved = security_settings.load(conn)
        action = conn.execute(sa.text("select action from ispflow.audit_log")).scalar()
    assert saved.scan_min_targets == 250 and saved.unexpected_countries == ("IR", "KP")
    assert action == "settings.security"


def test_bad_thresholds_are_explained_next_to_their_field(auth, client, db_engine):
    auth.login("admin")
    page = client.get("/netflow/security/settings")
    data = {k: ", ".join(map(str, v)) if isinstance(v, tuple) else v
            for k, v in security_settings.SecuritySettings().__dict__.items()}
    data.update(csrf_token=csrf_token(page), beacon_max_cv_percent=0, brute_ports="22, ssh")
    response = client.post("/netflow/security/settings", data=data)
    assert response.status_code == 400
    assert "A whole number from 1 to 100." in response.data.decode() and "is not a port number" in response.data.decode()
    with db_engine.connect() as conn:
        assert security_settings.load(conn) == security_settings.SecuritySettings()


def test_findings_command_analyses_the_period_and_prints_a_table(runner, db_engine):
    with db_engine.connect() as conn:
        insert_flows(conn, [r for r in t.traffic() if r["src_addr"] == t.BRUTE])
        conn.commit()
    result = runner.invoke(findings, ["--from", "2026-01-10T10:00Z", "--to", "2026-01-10T11:00Z"])
    assert result.exit_code == 0, result.output
    assert "Analysed 1 hour(s)." in result.stderr
    assert "Brute force" in result.stdout and t.BRUTE in result.stdout
    assert result.stdout.splitlines()[-1] == "1 finding(s); 1 of 1 settled hour(s) analysed."


def test_findings_command_writes_json_and_csv(runner, brute_force):
    as_json = json.loads(runner.invoke(findings, ["--from", "2026-01-10", "--to", "2026-01-10", "--format",
                                                  "json"]).stdout)
    assert [f["kind"] for f in as_json["findings"]] == ["bruteforce"]
    assert as_json["findings"][0]["evidence"]["attempts"] == 60
    rows = list(csv.DictReader(io.StringIO(runner.invoke(findings, ["--from", "2026-01-10", "--to", "2026-01-10",
                                                                    "--format", "csv", "--kind", "bruteforce"]).stdout)))
    assert [(r["subject"], r["peer"], r["port"]) for r in rows] == [(t.BRUTE, t.BRUTE_TARGET, "22")]


def test_findings_command_rejects_a_bad_time_with_one_sentence(runner, db_engine):
    result = runner.invoke(findings, ["--from", "soon", "--to", "2026-01-10"])
    assert result.exit_code == 2 and "'soon' is not a date-time" in result.output


def test_findings_csv_cells_never_run_as_a_formula(runner, brute_force):
    with brute_force.begin() as conn:
        conn.execute(sa.text("update ispflow.security_findings set account = '=HYPERLINK(\"http://x\")'"))
    out = runner.invoke(findings, ["--from", "2026-01-10", "--to", "2026-01-10", "--format", "csv"]).stdout
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["account"] == "'=HYPERLINK(\"http://x\")"
