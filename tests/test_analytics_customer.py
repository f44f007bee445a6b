"""A customer sees the traffic of the addresses their account held, while it held them, and
nothing else, whatever URL or parameter they try."""
from datetime import timedelta

import pytest

from ispflow.analytics import rollups
from tests.sample_flows import flow, insert_flows, utc
from ispflow.subscribers import Assignment, save_assignments

MORNING = {"period": "custom", "from": "2026-03-02T00:00Z", "to": "2026-03-02T12:00Z"}
AFTERNOON = {"period": "custom", "from": "2026-03-02T12:00Z", "to": "2026-03-03T00:00Z"}
WHOLE_DAY = {"period": "custom", "from": "2026-03-02T00:00Z", "to": "2026-03-03T00:00Z"}


@pytest.fixture
def history(app, db_engine):
    """100.64.0.1 was ACC-1's until noon and ACC-2's after; 100.64.0.2 is ACC-2's all day.
    Flows are stamped at ingest with the account holding the address, as the collector does."""
    from ispflow.extension import db

    with app.app_context():
        save_assignments(db.session, [
            Assignment.parse("ACC-1", "home", "100.64.0.1/32", "2026-03-01T00:00Z", "2026-03-02T12:00Z"),
            Assignment.parse("ACC-2", "home", "100.64.0.1/32", "2026-03-02T12:00Z"),
            Assignment.parse("ACC-2", "biz", "100.64.0.2/32", "2026-03-01T00:00Z"),
        ])
        db.session.commit()
    day = utc("2026-03-02T00:00:00Z")
    rows = []
    for hour in range(24):
        at = day + timedelta(hours=hour, minutes=7)
        holder = "ACC-1" if hour < 12 else "ACC-2"
        rows.append(flow(at, "203.0.113.9", "100.64.0.1", bytes=1000 if holder == "ACC-1" else 777_000,
                         direction="in", account=holder, service="home"))
        rows.append(flow(at, "100.64.0.2", "198.51.100.4", bytes=555_000, direction="out", account="ACC-2",
                         service="biz"))
    with db_engine.connect() as conn:
        insert_flows(conn, rows)
        conn.commit()
    rollups.update(db_engine, now=day + timedelta(hours=20, minutes=30))   # the rest comes from raw flows


@pytest.fixture
def customer(auth, history):
    auth.login("customer", username="alice", account="ACC-1")
    return auth.client


def test_the_customer_sees_their_own_traffic(customer):
    data = customer.get("/netflow/traffic.json", query_string=WHOLE_DAY).get_json()
    assert data["stats"]["in"]["volume_bytes"] == 12 * 1000 and data["stats"]["out"]["volume_bytes"] == 0


def test_an_address_they_held_shows_only_the_holding_period(customer):
    data = customer.get("/netflow/traffic.json",
                        query_string={"kind": "address", "value": "100.64.0.1", **WHOLE_DAY}).get_json()
    assert data["stats"]["in"]["volume_bytes"] == 12 * 1000


def test_a_time_range_after_they_gave_the_address_up_shows_nothing(customer):
    for url in ("/netflow/traffic.json", "/netflow/top.json"):
        data = customer.get(url, query_string={"kind": "address", "value": "100.64.0.1", "ip": "100.64.0.1",
                                               "by": "source", **AFTERNOON}).get_json()
        volume = data["stats"]["in"]["volume_bytes"] if "stats" in data else data["total"]["bytes"]
        assert volume == 0, url


FOREIGN = [
    ("/netflow/traffic.json", {"kind": "account", "value": "ACC-2"}),
    ("/netflow/traffic.json", {"kind": "address", "value": "100.64.0.2"}),
    ("/netflow/traffic.json", {"kind": "address", "value": "100.64.0.0/24"}),
    ("/netflow/traffic.json", {"kind": "address", "value": "::/0"}),
    ("/netflow/traffic.json", {"kind": "network"}),
    ("/netflow/traffic.json", {"kind": "service", "value": "biz"}),
    ("/netflow/traffic.json", {"kind": "interface", "value": "1:2"}),
    ("/netflow/traffic", {"kind": "account", "value": "ACC-2"}),
    ("/netflow/traffic", {"kind": "address", "value": "100.64.0.2"}),
    ("/netflow/top.json", {"by": "source", "account": "ACC-2"}),
    ("/netflow/top.json", {"by": "source", "ip": "100.64.0.2"}),
    ("/netflow/top.json", {"by": "conversation", "ip": "0.0.0.0/0"}),
    ("/netflow/top", {"by": "destination", "account": "ACC-2"}),
    ("/netflow/top", {"by": "application", "ip": "198.51.100.4"}),
]


@pytest.mark.parametrize("url,params", FOREIGN, ids=[f"{u}?{p}" for u, p in FOREIGN])
def test_anything_not_theirs_is_not_found(customer, url, params):
    assert customer.get(url, query_string={**params, **WHOLE_DAY}).status_code == 404


@pytest.mark.parametrize("by", ["source", "destination", "conversation", "application", "protocol"])
def test_top_reports_hold_only_their_traffic(customer, by):
    data = customer.get("/netflow/top.json", query_string={"by": by, **WHOLE_DAY}).get_json()
    assert data["total"]["bytes"] == 12 * 1000
    labels = " ".join(row["label"] for row in data["rows"])
    assert "100.64.0.2" not in labels and "198.51.100.4" not in labels


def test_the_subscriber_ranking_is_not_offered_to_customers(customer):
    response = customer.get("/netflow/top.json", query_string={"by": "subscriber", **WHOLE_DAY})
    assert response.status_code == 400 and "ACC-2" not in response.get_data(as_text=True)


def test_customers_get_no_flow_record_links(customer):
    data = customer.get("/netflow/top.json", query_string={"by": "destination", **WHOLE_DAY}).get_json()
    hrefs = [link["href"] for row in data["rows"] for link in row["links"]]
    assert hrefs and not any("/search" in href for href in hrefs)


def test_usage_for_billing_is_staff_only(customer):
    for url in ("/netflow/usage", "/netflow/usage.csv", "/netflow/usage.json"):
        assert customer.get(url, query_string={"month": "2026-03", "account": "ACC-1"}).status_code == 403


def test_the_customer_page_offers_only_their_addresses(customer):
    page = customer.get("/netflow/traffic", query_string=WHOLE_DAY).get_data(as_text=True)
    assert "100.64.0.1/32" in page and "100.64.0.2" not in page and "ACC-2" not in page
