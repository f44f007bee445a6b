"""The traffic pages and their JSON endpoints, for staff."""
from datetime import timedelta

import pytest

from ispflow.analytics import rollups
from tests.sample_flows import flow, insert_flows, utc

DAY = utc("2026-03-02T00:00:00Z")
CUSTOM = {"period": "custom", "from": "2026-03-02T00:00Z", "to": "2026-03-02T06:00Z"}


@pytest.fixture
def traffic(db_engine):
    rows = [flow(DAY + timedelta(hours=h, minutes=3), "203.0.113.5", "100.64.0.1", src_port=443, dst_port=50000,
                 bytes=3_000_000, direction="in", account="ACC-1", service="home") for h in range(6)]
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
    rollups.update(db_engine, now=DAY + timedelta(hours=3, minutes=15))


def test_network_graph_json_has_series_and_statistics(auth, client, traffic):
    auth.login("technician")
    data = client.get("/netflow/traffic.json", query_string={"kind": "network", **CUSTOM}).get_json()
    assert data["step_seconds"] == 300 and len(data["time"]) == 72
    assert data["stats"]["in"]["volume_bytes"] == 18_000_000
    assert "towards the subscriber" in data["perspective"]


def test_graph_page_shows_the_statistics_and_the_data_table(auth, client, traffic):
    auth.login("admin")
    page = client.get("/netflow/traffic", query_string={"kind": "account", "value": "ACC-1", **CUSTOM})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="bandwidth-table"' in text and "18.0 MB" in text and "80 kbit/s" in text
    assert "<script>" not in text and "uPlot.iife.min.js" in text


def test_a_bad_parameter_is_explained(auth, client):
    auth.login("admin")
    response = client.get("/netflow/traffic.json", query_string={"kind": "address", "value": "not-an-ip"})
    assert response.status_code == 400 and "not an IPv4 or IPv6" in response.get_json()["error"]


def test_top_json_rows_lead_compliance_to_the_prefilled_search(auth, client, traffic):
    auth.login("compliance")
    data = client.get("/netflow/top.json", query_string={"by": "source", **CUSTOM}).get_json()
    links = {link["label"]: link["href"] for link in data["rows"][0]["links"]}
    assert data["rows"][0]["label"] == "203.0.113.5"
    assert links["flow records"].startswith("/netflow/search?") and "ip=203.0.113.5" in links["flow records"]


def test_technicians_get_graphs_but_no_flow_records_from_top_rows(auth, client, traffic):
    auth.login("technician")
    data = client.get("/netflow/top.json", query_string={"by": "source", **CUSTOM}).get_json()
    assert [link["label"] for link in data["rows"][0]["links"]] == ["graph"]


def test_the_search_form_is_filled_in_from_a_drill_down_link(auth, client):
    auth.login("compliance")
    page = client.get("/netflow/search", query_string={"ip": "203.0.113.5", "from": "2026-03-02T00:00:00+00:00",
                                                       "to": "2026-03-02T06:00:00+00:00"}).get_data(as_text=True)
    assert 'value="203.0.113.5"' in page and 'value="2026-03-02T00:00:00+00:00"' in page


def test_usage_csv_for_billing(auth, client, traffic):
    auth.login("admin")
    response = client.get("/netflow/usage.csv", query_string={"month": "2026-03"})
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0].startswith("account,month,bytes_in,bytes_out,p95_in_bps")
    assert lines[1].startswith("ACC-1,2026-03,18000000,0,")


def test_usage_json_for_the_host_panel(auth, client, traffic):
    auth.login("admin")
    data = client.get("/netflow/usage.json", query_string={"month": "2026-03", "account": "ACC-1"}).get_json()
    assert data["month"] == "2026-03" and data["accounts"][0]["bytes_in"] == 18_000_000


def test_the_chart_library_is_served_by_the_module(auth, client):
    with client.get("/netflow/static/node_modules/uplot/dist/uPlot.iife.min.js") as response:
        assert response.status_code == 200 and b"uPlot" in response.data


def test_interface_graphs_are_chosen_by_exporter_id_and_interface_index(auth, client, db_engine, traffic):
    from tests.sample_flows import insert_exporter

    with db_engine.connect() as conn:
        exporter_id = insert_exporter(conn, "192.0.2.1", "edge-1")
        conn.commit()
    auth.login("technician")
    page = client.get("/netflow/traffic", query_string={"kind": "interface", "value": f"{exporter_id}:1", **CUSTOM})
    assert page.status_code == 200 and f"{exporter_id} = edge-1 (192.0.2.1)" in page.get_data(as_text=True)
    data = client.get("/netflow/traffic.json", query_string={"kind": "interface", "value": "1:2", **CUSTOM}).get_json()
    assert data["stats"]["in"]["volume_bytes"] == 18_000_000 and "entering the router" in data["perspective"]
