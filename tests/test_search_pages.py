"""The compliance officer's Search page: results only with a case reference, every search audited."""
import pytest
import sqlalchemy as sa

from ispflow.module_settings import ModuleSettings, save
from tests.sample_flows import flow, insert_exporter, insert_flows
from ispflow.testing import csrf_token


@pytest.fixture
def flows(db_engine):
    with db_engine.begin() as conn:
        save(conn, ModuleSettings(timezone="Europe/Prague"))
    with db_engine.connect() as conn:
        insert_exporter(conn, "192.0.2.1", "edge-1")
        insert_flows(conn, [flow(f"2026-01-10T10:{i:02d}:00Z", "100.64.0.10", "198.51.100.1", dst_port=443,
                                 account="ACC-1", service="fiber-100", bytes=1000 + i) for i in range(30)]
                     + [flow("2026-01-10T10:00:00Z", "127.0.0.1", "100.64.0.10", src_port=53, dst_port=40000,
                             protocol=17)])
        conn.commit()
    return db_engine


def search(client, page, **fields):
    data = {"csrf_token": csrf_token(page), "date_from": "2026-01-10", "date_to": "2026-01-10",
            "case_ref": "CASE-7/2026", "action": "search"}
    data.update(fields)
    return client.post("/netflow/search", data=data)


def audit_entries(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text("select * from ispflow.audit_log order by id")).all()


@pytest.fixture
def officer(auth, client):
    auth.login("compliance", username="olga")
    return client.get("/netflow/search")


def test_a_search_shows_rows_totals_and_local_times(client, flows, officer):
    page = search(client, officer, ip="100.64.0.10").data.decode()
    assert "<strong>31</strong> flows" in page
    assert "2026-01-10 11:29:00+01:00" in page  # 10:29Z shown in Prague time with its offset
    assert "https" in page and "domain" in page  # port names
    assert "tcp (6)" in page and "udp (17)" in page
    assert "edge-1" in page and "ACC-1" in page and "fiber-100" in page


def test_without_a_case_reference_no_result_is_shown_and_nothing_is_audited(client, flows, officer):
    response = search(client, officer, ip="100.64.0.10", case_ref="")
    page = response.data.decode()
    assert response.status_code == 400
    assert "A case reference or legal basis is required" in page
    assert 'id="results"' not in page
    assert audit_entries(flows) == []


@pytest.mark.parametrize("fields, message", [
    ({"ip": "100.64.0.300"}, "&#39;100.64.0.300&#39; is not an IPv4 or IPv6 address or CIDR range."),
    ({"ip": "100.64.0.10", "date_from": "2026-01-11", "date_to": "2026-01-10"}, "must be later than"),
    ({"ip": "100.64.0.10", "date_from": "2025-01-01", "date_to": "2026-01-10"},
     "longer than the retention period (6 months)"),
    ({"ip": "100.64.0.10", "protocol": "tpc"}, "Unknown protocol name &#39;tpc&#39;"),
])
def test_bad_input_is_explained_next_to_its_field(client, flows, officer, fields, message):
    response = search(client, officer, **fields)
    assert response.status_code == 400
    page = response.data.decode()
    assert message in page
    assert page.index(message) > page.index('<ul class="errors">')
    assert 'id="results"' not in page


def test_next_page_continues_where_the_first_ended(client, flows, officer):
    with flows.connect() as conn:  # 130 flows from 100.64.0.10: a page of 100, then 30
        insert_flows(conn, [flow(f"2026-01-10T12:{i // 60:02d}:{i % 60:02d}Z", account="ACC-1") for i in range(100)])
        conn.commit()
    first = search(client, officer, ip="100.64.0.10", ip_side="src")
    assert first.data.count(b"ACC-1</td>") == 100
    cursor = first.data.decode().split('name="after" value="')[1].split('"')[0]
    second = search(client, first, ip="100.64.0.10", ip_side="src", action="next", after=cursor)
    assert second.data.count(b"ACC-1</td>") == 30
    assert b"11:29:00+01:00" in second.data and b"13:00:00+01:00" not in second.data
    assert b'value="next"' not in second.data


def test_sorting_by_bytes_shows_the_largest_first(client, flows, officer):
    page = search(client, officer, ip="100.64.0.10", ip_side="src", order="bytes").data.decode()
    assert page.index("1,029") < page.index("1,028") < page.index("1,000")


def test_resolve_ip_names_the_addresses_on_the_page(client, flows, officer):
    page = search(client, officer, ip="127.0.0.1", action="resolve").data.decode()
    assert "127.0.0.1 <span class=\"muted\">(localhost)</span>" in page


def test_every_search_is_audited_with_criteria_and_case_but_no_results(client, flows, officer):
    search(client, officer, ip="100.64.0.10", protocol="tcp", port="443")
    [entry] = audit_entries(flows)
    assert (entry.actor, entry.role, entry.action, entry.case_ref) == ("olga", "compliance", "search", "CASE-7/2026")
    assert entry.criteria["ip"] == "100.64.0.10/32" and entry.criteria["protocol"] == 6
    assert entry.criteria["ports"] == [[443, 443]]
    assert entry.row_count == 30
    assert "198.51.100.1" not in str(entry.criteria)  # the peer found is a result, not a criterion


def test_a_search_without_csrf_token_is_refused_and_not_audited(client, flows, officer):
    response = client.post("/netflow/search", data={"ip": "100.64.0.10", "date_from": "2026-01-10",
                                                    "date_to": "2026-01-10", "case_ref": "X"})
    assert b"The form expired" in response.data
    assert b'id="results"' not in response.data
    assert audit_entries(flows) == []


@pytest.mark.parametrize("role", ["admin", "technician", "customer"])
def test_other_roles_cannot_post_a_search(auth, client, flows, role):
    auth.login(role)
    response = client.post("/netflow/search", data={"ip": "100.64.0.10", "case_ref": "X"})
    assert response.status_code == 403
    assert audit_entries(flows) == []


def test_the_menu_offers_search_to_compliance_only(auth, client):
    auth.login("technician")
    assert b"Search" not in client.get("/netflow/").data
