"""Search results show the country and AS of both ends, without changing the stored flows."""
import pytest
import sqlalchemy as sa

from ispflow.commands import search as commands
from tests.sample_flows import flow, insert_flows
from ispflow.testing import csrf_token

from .mmdb_files import maxmind_asn, maxmind_country, write_mmdb


@pytest.fixture
def geo_files(tmp_path, monkeypatch):
    """Country and ASN databases named in the environment before the app starts."""
    country = write_mmdb(tmp_path / "country.mmdb", {"198.51.100.0/24": maxmind_country("NL", "Netherlands")})
    asn = write_mmdb(tmp_path / "asn.mmdb", {"198.51.100.0/24": maxmind_asn(1136, "KPN B.V.")}, "GeoLite2-ASN")
    monkeypatch.setenv("ISPFLOW_GEOIP_COUNTRY_DB", country)
    monkeypatch.setenv("ISPFLOW_GEOIP_ASN_DB", asn)


@pytest.fixture
def flows(db_engine):
    with db_engine.connect() as conn:
        insert_flows(conn, [flow("2026-01-10T10:00:00Z", "100.64.0.10", "198.51.100.1", account="ACC-1"),
                            flow("2026-01-10T10:01:00Z", "100.64.0.10", "192.0.2.50", dst_as=64500)])
        conn.commit()
    return db_engine


def test_search_page_shows_country_and_as_of_the_remote_end(geo_files, auth, client, flows):
    auth.login("compliance")
    page = client.post("/netflow/search", data={
        "csrf_token": csrf_token(client.get("/netflow/search")), "ip": "100.64.0.10", "date_from": "2026-01-10",
        "date_to": "2026-01-10", "case_ref": "CASE-1", "action": "search"}).data.decode()
    assert "NL · AS1136 KPN B.V." in page
    assert "AS64500" in page  # the exporter's AS number, for an address the database does not know


def test_search_cli_table_shows_the_origins(geo_files, runner, flows):
    result = runner.invoke(commands.search, ["--ip", "100.64.0.10", "--from", "2026-01-10", "--to", "2026-01-10",
                                             "--case", "CASE-CLI"])
    assert result.exit_code == 0, result.output
    assert "NL · AS1136 KPN B.V." in result.stdout and "AS64500" in result.stdout


def test_enrichment_leaves_the_stored_flows_unchanged(geo_files, runner, flows):
    runner.invoke(commands.search, ["--ip", "100.64.0.10", "--from", "2026-01-10", "--to", "2026-01-10",
                                    "--case", "CASE-CLI"])
    with flows.connect() as conn:
        stored = conn.execute(sa.text("select dst_as from ispflow.flows order by ts_start")).scalars().all()
    assert stored == [None, 64500]


def test_a_findings_link_fills_the_search_form_but_runs_no_search(auth, client, flows):
    auth.login("compliance")
    page = client.get("/netflow/search?ip=100.64.0.10&peer=198.51.100.1&from=2026-01-10T10:00&to=2026-01-10T11:00"
                      "&port=22&case_ref=INJECTED").data.decode()
    assert 'value="100.64.0.10"' in page and 'value="198.51.100.1"' in page and 'value="22"' in page
    assert 'value="2026-01-10T10:00"' in page
    assert "INJECTED" not in page and 'id="totals"' not in page
