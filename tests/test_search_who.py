"""Who held an address: the directory for plain addresses, NAT events behind CGNAT, always audited."""
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from ispflow.module_settings import ModuleSettings, save
from tests.sample_flows import insert_nat_events, nat_event
from ispflow.search.who import who_held
from ispflow.subscribers import Assignment, save_assignments
from ispflow.testing import csrf_token

PUBLIC = "203.0.113.5"


@pytest.fixture
def directory(db_engine):
    with db_engine.begin() as conn:
        save(conn, ModuleSettings(timezone="Europe/Prague"))
    from sqlalchemy.orm import Session

    with Session(db_engine) as session:
        save_assignments(session, [
            Assignment.parse("ACC-A", "cgnat-50", "100.64.0.10", "2026-01-01T00:00:00Z"),
            Assignment.parse("ACC-B", "cgnat-50", "100.64.0.11", "2026-01-01T00:00:00Z"),
            Assignment.parse("ACC-POOL", "cgnat-pool", "203.0.113.0/24", "2026-01-01T00:00:00Z"),
            Assignment.parse("ACC-FIX", "fiber-1000", "198.51.100.77", "2026-01-01T00:00:00Z"),
        ])
        session.commit()
    with db_engine.connect() as conn:
        insert_nat_events(conn, [
            # ACC-A holds ports 1024-2047 all day (port-block allocation, then de-allocation).
            nat_event("2026-02-01T08:00:00Z", "100.64.0.10", PUBLIC, event=16, private_port=None,
                      port_block_start=1024, port_block_end=2047),
            nat_event("2026-02-01T20:00:00Z", "100.64.0.10", PUBLIC, event=17, private_port=None,
                      port_block_start=1024, port_block_end=2047),
            # ACC-B's single session on port 3000, exported with its end time.
            nat_event("2026-02-01T09:00:00Z", "100.64.0.11", PUBLIC, private_port=51515, public_port=3000,
                      ts_end=datetime(2026, 2, 1, 9, 5, tzinfo=timezone.utc)),
        ])
        conn.commit()
    return db_engine


def ask(engine, address, at, port=None):
    with engine.connect() as conn:
        return who_held(conn, address, datetime.fromisoformat(at), port)


def test_a_port_in_a_block_gives_the_private_address_and_its_subscriber(directory):
    holder = ask(directory, PUBLIC, "2026-02-01T12:00:00+00:00", 1500)
    assert (holder.account, holder.service, holder.private_addr, holder.port_block) == (
        "ACC-A", "cgnat-50", "100.64.0.10", (1024, 2047))


def test_a_single_session_port_is_matched_within_its_lifetime_only(directory):
    during = ask(directory, PUBLIC, "2026-02-01T09:03:00+00:00", 3000)
    after = ask(directory, PUBLIC, "2026-02-01T09:06:00+00:00", 3000)
    assert (during.account, during.private_addr, during.private_port) == ("ACC-B", "100.64.0.11", 51515)
    assert not after.behind_nat and after.account == "ACC-POOL"


def test_a_block_released_before_the_moment_no_longer_answers(directory):
    holder = ask(directory, PUBLIC, "2026-02-01T21:00:00+00:00", 1500)
    assert not holder.behind_nat


def test_an_account_stamped_on_the_nat_event_wins(directory):
    with directory.connect() as conn:
        insert_nat_events(conn, [nat_event("2026-03-01T00:00:00Z", "100.64.9.9", PUBLIC, public_port=4000,
                                           account="ACC-STAMPED", service="cgnat-10")])
        conn.commit()
    assert ask(directory, PUBLIC, "2026-03-01T01:00:00+00:00", 4000).account == "ACC-STAMPED"


def test_a_plain_address_is_answered_from_the_directory(directory):
    holder = ask(directory, "198.51.100.77", "2026-02-01T12:00:00+00:00")
    assert (holder.account, holder.service, holder.prefix, holder.behind_nat) == (
        "ACC-FIX", "fiber-1000", "198.51.100.77/32", False)
    assert ask(directory, "192.0.2.1", "2026-02-01T12:00:00+00:00") is None


def lookup_page(client, **fields):
    page = client.get("/netflow/who")
    data = {"csrf_token": csrf_token(page), "case_ref": "CASE-3"}
    data.update(fields)
    return client.post("/netflow/who", data=data)


def test_the_page_answers_in_local_time_and_audits_the_lookup(auth, client, directory):
    auth.login("compliance", username="olga")
    page = lookup_page(client, ip=PUBLIC, port="1500", at="2026-02-01 13:00").data.decode()  # 12:00Z
    assert "At 2026-02-01 13:00:00+01:00" in page
    assert "<strong>ACC-A</strong>" in page and "<strong>100.64.0.10</strong>" in page and "1024–2047" in page
    with directory.connect() as conn:
        entry = conn.execute(sa.text("select * from ispflow.audit_log")).one()
    assert (entry.actor, entry.action, entry.case_ref, entry.row_count) == ("olga", "who", "CASE-3", 1)
    assert entry.criteria == {"ip": PUBLIC, "port": 1500, "at": "2026-02-01T12:00:00+00:00"}


@pytest.mark.parametrize("fields, message", [
    ({"ip": "203.0.113.999", "at": "2026-02-01 13:00"}, "&#39;203.0.113.999&#39; is not an IPv4 or IPv6 address."),
    ({"ip": PUBLIC, "port": "70000", "at": "2026-02-01 13:00"}, "&#39;70000&#39; is not a port number"),
    ({"ip": PUBLIC, "at": "noon"}, "&#39;noon&#39; is not a date-time"),
    ({"ip": PUBLIC, "at": "2026-02-01 13:00", "case_ref": ""}, "A case reference or legal basis is required"),
])
def test_the_page_explains_bad_input_and_answers_nothing(auth, client, directory, fields, message):
    auth.login("compliance")
    response = lookup_page(client, **fields)
    assert response.status_code == 400
    assert message in response.data.decode()
    assert b'id="who-answer"' not in response.data
    with directory.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ispflow.audit_log")).scalar() == 0


def test_a_session_with_another_destination_than_the_remote_side_named_does_not_answer(directory):
    with directory.connect() as conn:
        insert_nat_events(conn, [nat_event("2026-03-01T00:00:00Z", "100.64.0.10", PUBLIC, public_port=5000,
                                           dst_addr="192.0.2.80", dst_port=443)])
        conn.commit()
    with directory.connect() as conn:
        named = who_held(conn, PUBLIC, datetime(2026, 3, 1, 0, 1, tzinfo=timezone.utc), 5000, remote="192.0.2.80")
        other = who_held(conn, PUBLIC, datetime(2026, 3, 1, 0, 1, tzinfo=timezone.utc), 5000, remote="192.0.2.81")
    assert (named.account, named.private_addr) == ("ACC-A", "100.64.0.10")
    assert not other.behind_nat


def test_without_a_port_every_open_translation_of_the_address_is_a_candidate(directory):
    holder = ask(directory, PUBLIC, "2026-02-01T09:03:00+00:00")
    assert holder.ambiguous and holder.account is None
    assert sorted((c.account, c.private_addr) for c in holder.candidates) == [
        ("ACC-A", "100.64.0.10"), ("ACC-B", "100.64.0.11")]
    assert holder.reason == (f"2 private addresses held translations of {PUBLIC} at that moment, by the NAT events; "
                             "give the public port to narrow it")


def test_the_page_lists_every_open_translation_without_a_port(auth, client, directory):
    auth.login("compliance")
    page = lookup_page(client, ip=PUBLIC, at="2026-02-01 10:03").data.decode()  # 09:03Z
    assert "cannot be tied to one" in page and "give the public port to narrow it" in page
    assert "<strong>ACC-A</strong>" in page and "<strong>ACC-B</strong>" in page and "1024–2047" in page
