"""Searches find exactly the flows their criteria describe, page after page."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ispflow.search.criteria import CriteriaError, parse_criteria
from ispflow.search.query import all_rows, fetch_page, totals
from tests.sample_flows import flow, insert_flows

UTC = ZoneInfo("UTC")
PRAGUE = ZoneInfo("Europe/Prague")


def criteria(zone=UTC, **values):
    values.setdefault("from", "2026-03-01")
    values.setdefault("to", "2026-03-31")
    values.setdefault("case_ref", "CASE-1")
    return parse_criteria(values, zone=zone, retention_months=6)


@pytest.fixture
def conn(db_engine):
    with db_engine.connect() as conn:
        yield conn


def load(conn, rows):
    insert_flows(conn, rows)
    conn.commit()


def found(conn, c, **kwargs):
    return [(str(r.src_addr), str(r.dst_addr), r.src_port, r.dst_port) for r in fetch_page(conn, c, **kwargs).rows]


def test_address_matches_as_source_destination_or_either(conn):
    load(conn, [flow("2026-03-02T10:00Z", "100.64.0.10", "198.51.100.1"),
                flow("2026-03-02T11:00Z", "198.51.100.2", "100.64.0.10"),
                flow("2026-03-02T12:00Z", "198.51.100.3", "198.51.100.4")])
    assert {r[1] for r in found(conn, criteria(ip="100.64.0.10", ip_side="src"))} == {"198.51.100.1"}
    assert {r[0] for r in found(conn, criteria(ip="100.64.0.10", ip_side="dst"))} == {"198.51.100.2"}
    assert len(found(conn, criteria(ip="100.64.0.10"))) == 2


def test_a_flow_between_two_addresses_of_one_range_is_found_once(conn):
    load(conn, [flow("2026-03-02T10:00Z", "100.64.0.10", "100.64.0.11")])
    assert len(found(conn, criteria(ip="100.64.0.0/24"))) == 1
    assert totals(conn, criteria(ip="100.64.0.0/24")).flows == 1


def test_ipv4_cidr_matches_the_whole_range_only(conn):
    load(conn, [flow("2026-03-02T10:00Z", "100.64.1.0"), flow("2026-03-02T10:01Z", "100.64.1.255"),
                flow("2026-03-02T10:02Z", "100.64.2.0"), flow("2026-03-02T10:03Z", "100.64.0.255")])
    assert sorted(r[0] for r in found(conn, criteria(ip="100.64.1.0/24", ip_side="src"))) == [
        "100.64.1.0", "100.64.1.255"]


def test_ipv6_cidr_and_host(conn):
    load(conn, [flow("2026-03-02T10:00Z", "2001:db8:10::5", "2a00:1450::1"),
                flow("2026-03-02T10:01Z", "2001:db8:11::5", "2a00:1450::1"),
                flow("2026-03-02T10:02Z", "100.64.0.1", "93.184.216.34")])
    assert [r[0] for r in found(conn, criteria(ip="2001:db8:10::/48"))] == ["2001:db8:10::5"]
    assert len(found(conn, criteria(ip="2a00:1450::1"))) == 2


def test_peer_limits_to_the_conversation_in_both_directions(conn):
    load(conn, [flow("2026-03-02T10:00Z", "100.64.0.10", "198.51.100.1"),
                flow("2026-03-02T10:01Z", "198.51.100.1", "100.64.0.10"),
                flow("2026-03-02T10:02Z", "100.64.0.10", "198.51.100.2")])
    assert len(found(conn, criteria(ip="100.64.0.10", peer="198.51.100.1"))) == 2
    assert found(conn, criteria(ip="100.64.0.10", peer="198.51.100.1", ip_side="dst")) == [
        ("198.51.100.1", "100.64.0.10", 51000, 443)]


def test_protocol_by_name_or_number(conn):
    load(conn, [flow("2026-03-02T10:00Z", protocol=6), flow("2026-03-02T10:01Z", protocol=17, dst_port=53),
                flow("2026-03-02T10:02Z", protocol=1, src_port=0, dst_port=2048)])
    assert [r[3] for r in found(conn, criteria(ip="100.64.0.10", protocol="UDP"))] == [53]
    assert [r[3] for r in found(conn, criteria(ip="100.64.0.10", protocol="1"))] == [2048]
    assert len(found(conn, criteria(ip="100.64.0.10", protocol="icmp"))) == 1


def test_port_ranges_on_either_side_or_one(conn):
    load(conn, [flow("2026-03-02T10:00Z", src_port=51000, dst_port=443),
                flow("2026-03-02T10:01Z", src_port=8080, dst_port=60000),
                flow("2026-03-02T10:02Z", src_port=52000, dst_port=25)])
    assert len(found(conn, criteria(ip="100.64.0.10", port="8000-8100,443"))) == 2
    assert found(conn, criteria(ip="100.64.0.10", port="8000-8100", port_side="dst")) == []
    assert [r[3] for r in found(conn, criteria(ip="100.64.0.10", port="25", port_side="dst"))] == [25]


def directory(conn, *rows):
    from sqlalchemy.orm import Session

    from ispflow.subscribers import Assignment, save_assignments

    with Session(bind=conn) as session:
        save_assignments(session, [Assignment.parse(*row) for row in rows])
        session.commit()


def test_an_account_search_follows_the_accounts_addresses_while_it_held_them(conn):
    directory(conn, ("ACC-1", "fiber", "100.64.0.10", "2026-03-01T00:00Z", "2026-03-10T00:00Z"),
              ("ACC-2", "fiber", "100.64.0.10", "2026-03-10T00:00Z", None),
              ("ACC-1", "fiber", "2001:db8:1::/48", "2026-03-01T00:00Z", None))
    load(conn, [flow("2026-03-05T10:00Z", "100.64.0.10", "198.51.100.1", dst_port=1),
                flow("2026-03-06T10:00Z", "198.51.100.1", "100.64.0.10", dst_port=2),
                flow("2026-03-11T10:00Z", "100.64.0.10", "198.51.100.1", dst_port=3),
                flow("2026-03-12T10:00Z", "2001:db8:1::5", "2a00:1450::1", dst_port=4),
                flow("2026-03-12T10:00Z", "100.64.0.11", "198.51.100.1", dst_port=5)])
    assert sorted(r[3] for r in found(conn, criteria(account="ACC-1"))) == [1, 2, 4]
    assert [r[3] for r in found(conn, criteria(account="ACC-2"))] == [3]
    assert totals(conn, criteria(account="ACC-1")).flows == 3
    assert sorted(r.dst_port for r in all_rows(conn, criteria(account="ACC-1"))) == [1, 2, 4]


def test_a_service_search_and_an_address_within_an_account(conn):
    directory(conn, ("ACC-1", "fiber", "100.64.0.10", "2026-03-01T00:00Z", None),
              ("ACC-2", "dsl", "100.64.0.11", "2026-03-01T00:00Z", None))
    load(conn, [flow("2026-03-05T10:00Z", "100.64.0.10", "198.51.100.1", dst_port=1),
                flow("2026-03-05T11:00Z", "100.64.0.11", "198.51.100.1", dst_port=2),
                flow("2026-03-05T12:00Z", "100.64.0.11", "198.51.100.2", dst_port=3)])
    assert [r[3] for r in found(conn, criteria(service="dsl", peer=""))] == [3, 2]
    assert [r[3] for r in found(conn, criteria(ip="198.51.100.1", account="ACC-2"))] == [2]
    assert found(conn, criteria(account="ACC-NOBODY")) == []


def test_a_service_covering_too_many_assignments_asks_for_an_address_range(conn, monkeypatch):
    monkeypatch.setattr("ispflow.search.query.MAX_SCOPE", 3)
    directory(conn, *[(f"ACC-{i}", "fiber", f"100.64.0.{i}", "2026-03-01T00:00Z", None) for i in range(4)])
    with pytest.raises(CriteriaError) as caught:
        totals(conn, criteria(service="fiber"))
    assert "covers more than 3 address assignments" in caught.value.errors["service"]


def test_the_window_is_in_the_isps_time_zone_and_half_open(conn):
    # Prague is UTC+1 in winter: the local day 2026-01-02 is 2026-01-01T23:00Z to 2026-01-02T23:00Z.
    load(conn, [flow("2026-01-01T22:59:59Z", dst_port=1), flow("2026-01-01T23:00:00Z", dst_port=2),
                flow("2026-01-02T22:59:59Z", dst_port=3), flow("2026-01-02T23:00:00Z", dst_port=4)])
    day = criteria(PRAGUE, ip="100.64.0.10", **{"from": "2026-01-02", "to": "2026-01-02"})
    assert sorted(r[3] for r in found(conn, day)) == [2, 3]
    utc_day = criteria(UTC, ip="100.64.0.10", **{"from": "2026-01-02", "to": "2026-01-02"})
    assert sorted(r[3] for r in found(conn, utc_day)) == [3, 4]


def test_across_a_daylight_saving_change_local_times_map_to_the_right_instants(conn):
    # 2026-03-29 02:00 CET -> 03:00 CEST; 03:30 local is 01:30Z.
    load(conn, [flow("2026-03-29T01:29:00Z", dst_port=1), flow("2026-03-29T01:31:00Z", dst_port=2)])
    after = criteria(PRAGUE, ip="100.64.0.10", **{"from": "2026-03-29T03:30", "to": "2026-03-30"})
    assert [r[3] for r in found(conn, after)] == [2]


def test_keyset_paging_walks_every_row_once_even_with_equal_times(conn):
    start = datetime(2026, 3, 5, tzinfo=timezone.utc)
    # Pairs of flows with the same start time straddle page boundaries.
    load(conn, [flow(start + timedelta(minutes=i // 2), dst_port=1000 + i) for i in range(25)])
    c = criteria(ip="100.64.0.10")
    seen, cursor = [], None
    while True:
        page = fetch_page(conn, c, cursor=cursor, size=4)
        seen += [(r.ts_start, r.dst_port) for r in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(p for _, p in seen) == list(range(1000, 1025))
    assert [t for t, _ in seen] == sorted((t for t, _ in seen), reverse=True)


def test_paging_walks_sparse_flows_across_many_days_and_stops_at_the_window(conn):
    # One flow every 30 hours over 60 days; the window starts mid-day, so its first flow is cut.
    start = datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc)
    load(conn, [flow(start + timedelta(hours=30 * i), dst_port=i) for i in range(48)])
    c = criteria(ip="100.64.0.10", **{"from": "2026-01-02T12:00", "to": "2026-03-15"})
    ports, cursor = [], None
    while True:
        page = fetch_page(conn, c, cursor=cursor, size=7)
        ports += [r.dst_port for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert ports == list(range(47, 0, -1))
    assert [r.dst_port for r in all_rows(conn, c)] == ports


def test_pages_stay_stable_when_newer_flows_arrive(conn):
    start = datetime(2026, 3, 5, tzinfo=timezone.utc)
    load(conn, [flow(start + timedelta(minutes=i), dst_port=i) for i in range(10)])
    c = criteria(ip="100.64.0.10")
    first = fetch_page(conn, c, size=5)
    load(conn, [flow(start + timedelta(hours=5), dst_port=99)])
    second = fetch_page(conn, c, cursor=first.next_cursor, size=5)
    assert [r.dst_port for r in second.rows] == [4, 3, 2, 1, 0]


def test_sorting_by_bytes_pages_from_the_largest(conn):
    start = datetime(2026, 3, 5, tzinfo=timezone.utc)
    sizes = [500, 90000, 1200, 90000, 7, 31000]
    load(conn, [flow(start + timedelta(minutes=i), bytes=b, dst_port=i) for i, b in enumerate(sizes)])
    c = criteria(ip="100.64.0.10")
    first = fetch_page(conn, c, order="bytes", size=3)
    second = fetch_page(conn, c, order="bytes", cursor=first.next_cursor, size=3)
    assert [r.bytes for r in first.rows + second.rows] == sorted(sizes, reverse=True)
    assert [r.dst_port for r in first.rows[:2]] == [3, 1]  # equal bytes: newest first
    assert second.next_cursor is None


def test_totals_cover_the_whole_result_not_the_page(conn):
    start = datetime(2026, 3, 5, tzinfo=timezone.utc)
    load(conn, [flow(start + timedelta(minutes=i), bytes=1000 + i, packets=2) for i in range(30)]
         + [flow(start, "198.51.100.9", "198.51.100.10", bytes=10**9)])
    c = criteria(ip="100.64.0.10")
    assert len(fetch_page(conn, c, size=10).rows) == 10
    result = totals(conn, c)
    assert (result.flows, result.bytes, result.packets) == (30, sum(range(1000, 1030)), 60)


def test_a_forged_page_position_is_refused(conn):
    with pytest.raises(ValueError, match="page position is not valid"):
        fetch_page(conn, criteria(ip="100.64.0.10"), cursor="2026-01-01T00:00:00+00:00~(1,1); drop table x")


@pytest.mark.parametrize("field, values, message", [
    ("ip", {"ip": "300.1.1.1"}, "'300.1.1.1' is not an IPv4 or IPv6 address or CIDR range."),
    ("to", {"ip": "10.0.0.1", "from": "2026-03-05", "to": "2026-03-01"}, "'To' must be later than 'From'."),
    ("to", {"ip": "10.0.0.1", "from": "2025-01-01", "to": "2026-03-01"}, "longer than the retention period (6 months)"),
    ("protocol", {"ip": "10.0.0.1", "protocol": "tcpx"}, "Unknown protocol name 'tcpx'"),
    ("port", {"ip": "10.0.0.1", "port": "2000-1000"}, "runs backwards"),
    ("port", {"ip": "10.0.0.1", "port": "70000"}, "out of range"),
    ("from", {"ip": "10.0.0.1", "from": "yesterday"}, "'yesterday' is not a date-time"),
    ("case_ref", {"ip": "10.0.0.1", "case_ref": ""}, "case reference or legal basis is required"),
    ("ip", {}, "Give an IP address or range, an account or a service."),
    ("peer", {"ip": "10.0.0.1", "peer": "2001:db8::1"}, "same IP version"),
])
def test_bad_input_is_explained_on_its_field(field, values, message):
    with pytest.raises(CriteriaError) as caught:
        criteria(**values)
    assert message in caught.value.errors[field]


def test_criteria_survive_a_round_trip_through_json():
    from ispflow.search.criteria import Criteria

    c = criteria(PRAGUE, ip="2001:db8::/32", peer="2001:db8:1::1", protocol="udp", port="53,5353-5354",
                 account="ACC-1", ip_side="src")
    assert Criteria.from_json(c.to_json()) == c


@pytest.mark.parametrize("search", [totals, all_rows, fetch_page])
def test_a_search_is_never_jit_compiled(conn, search):
    """Compiling a plan over six months of daily chunks took a second for a 29 ms query."""
    conn.exec_driver_sql("set jit_above_cost = 0")   # the server would compile every plan
    search(conn, criteria(ip="100.64.0.1"))
    assert conn.exec_driver_sql("show jit").scalar() == "off"


def test_pages_and_whole_results_show_each_flow_as_the_flow_records_view_does(conn):
    """Pages pick flows from the table and name them afterwards; what they show is the view's."""
    import sqlalchemy as sa

    load(conn, [flow(f"2026-03-02T10:{i:02d}Z", "100.64.0.10", f"198.51.100.{i}", protocol=protocol,
                     tcp_flags=flags, account=account, service=service)
                for i, (protocol, flags, account, service) in enumerate([
                    (6, 0x1B, "ACC-1", "fibre"), (6, 0x02, "ACC-1", "fibre"), (6, 0x14, "ACC-2", None),
                    (17, None, "ACC-1", "dsl"), (6, None, None, None), (1, None, "ACC-2", None)])])
    view = {(str(r.dst_addr), r.account, r.service, r.status) for r in conn.execute(sa.text(
        "select dst_addr, account, service, status from ispflow.flow_records"))}
    assert len({status for *_, status in view}) == 3   # success, failure and none
    for order in ("newest", "bytes"):
        page = fetch_page(conn, criteria(ip="100.64.0.10"), order=order, size=4)
        rest = fetch_page(conn, criteria(ip="100.64.0.10"), order=order, cursor=page.next_cursor)
        for rows in (page.rows + rest.rows, all_rows(conn, criteria(ip="100.64.0.10"), order)):
            assert {(str(r.dst_addr), r.account, r.service, r.status) for r in rows} == view
