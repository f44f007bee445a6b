"""One rule for "who held address X at moment T", whoever asks: the collector stamping a flow, the
Who page, ``ispflow who`` and ``ispflow subscribers who``. The most specific prefix wins; one
prefix never has two holders at once (the database refuses it)."""
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ispflow.cli import subscribers_import, subscribers_who
from ispflow.commands import search as commands
from ispflow.subscribers import Assignment, OverlapError, save_assignments
from ispflow.testing import RunningCollector, csrf_token
from tests import synthetic

from .netflow_tools import send

DIRECTORY = [
    ("ACC-POOL", "cgnat", "203.0.113.0/24", "2026-01-01T00:00:00Z", None),
    ("ACC-BIZ", "business", "203.0.113.8/29", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
    ("ACC-HOST", "static", "203.0.113.10", "2026-02-10T00:00:00Z", "2026-02-20T00:00:00Z"),
    ("ACC-OLD", "dsl", "203.0.113.20", "2026-01-01T00:00:00Z", "2026-02-10T12:00:00Z"),
    ("ACC-NEW", "fiber", "203.0.113.20", "2026-02-10T12:00:00Z", None),
]

# (address, moment, the account the rule gives)
CASES = [
    ("203.0.113.10", "2026-02-15T00:00:00Z", "ACC-HOST"),   # /32 inside /29 inside /24
    ("203.0.113.10", "2026-02-05T00:00:00Z", "ACC-BIZ"),    # before the /32 began
    ("203.0.113.10", "2026-02-20T00:00:00Z", "ACC-BIZ"),    # the /32's end is not its own
    ("203.0.113.10", "2026-03-05T00:00:00Z", "ACC-POOL"),   # after the /29 ended
    ("203.0.113.100", "2026-02-15T00:00:00Z", "ACC-POOL"),  # only the pool covers it
    ("203.0.113.20", "2026-02-10T11:59:59Z", "ACC-OLD"),    # reassigned at noon
    ("203.0.113.20", "2026-02-10T12:00:00Z", "ACC-NEW"),
]


def utc(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def unix(text):
    return utc(text).timestamp()


@pytest.fixture
def directory(db_engine):
    with Session(db_engine) as session:
        save_assignments(session, [Assignment.parse(*row) for row in DIRECTORY])
        session.commit()
    return db_engine


def test_the_collector_stamps_each_flow_with_the_rules_holder(directory, database_url, tmp_path):
    running = RunningCollector(database_url, tmp_path)
    running.start()
    try:
        exporter = synthetic.Exporter(version=10, domain=4)
        template = synthetic.generate_flows(1, seed=3)[0]
        sent = [dict(template, src=address, dst="198.51.100.1", src_port=40000 + i, start=unix(moment),
                     end=unix(moment) + 1) for i, (address, moment, _) in enumerate(CASES)]
        send(exporter.packets(sent, synthetic.IPFIX_IPV4, export_time=unix("2026-03-06T00:00:00Z")),
             running.ports()[0])
        rows = running.wait_for_flows(directory, len(CASES))
    finally:
        running.stop()
    stamped = {(row["sa"], row["ts_start"]): row["account"] for row in rows}
    assert [stamped.get((address, utc(moment))) for address, moment, _ in CASES] == [c[2] for c in CASES]


def test_the_who_page_answers_by_the_rule(directory, auth, client):
    auth.login("compliance")
    answers = []
    for address, moment, _ in CASES:
        page = client.get("/netflow/who")
        data = {"csrf_token": csrf_token(page), "case_ref": "CASE-9", "ip": address,
                "at": utc(moment).strftime("%Y-%m-%d %H:%M:%S")}
        html = client.post("/netflow/who", data=data).data.decode()
        answers.append(next((c[0] for c in DIRECTORY if f"<strong>{c[0]}</strong>" in html), None))
    assert answers == [c[2] for c in CASES]


def test_ispflow_who_answers_by_the_rule(directory, runner):
    answers = []
    for address, moment, _ in CASES:
        result = runner.invoke(commands.who, ["--ip", address, "--at", moment, "--case", "CASE-9"])
        answers.append(result.output.split("account=")[1].split()[0] if "account=" in result.output else None)
    assert answers == [c[2] for c in CASES]


def test_ispflow_subscribers_who_answers_by_the_rule(directory, runner):
    answers = []
    for address, moment, _ in CASES:
        result = runner.invoke(subscribers_who, ["--ip", address, "--at", moment])
        answers.append(result.output.split("account=")[1].split()[0] if "account=" in result.output else None)
    assert answers == [c[2] for c in CASES]


def test_the_database_refuses_two_holders_of_one_prefix_at_once(directory):
    with directory.begin() as conn, pytest.raises(sa.exc.IntegrityError, match="ip_assignments_no_overlap"):
        conn.execute(sa.text(
            "insert into ispflow.ip_assignments (account, service, prefix, valid_from) "
            "values ('ACC-X', 'x', '203.0.113.8/29', '2026-02-15T00:00:00Z')"))
        conn.execute(sa.text("set constraints all immediate"))


def test_an_overlapping_import_is_refused_whole_with_the_reason(directory, runner, tmp_path):
    path = tmp_path / "overlap.csv"
    path.write_text("account,service,prefix,valid_from,valid_to\n"
                    "ACC-Z,z,198.51.100.0/30,2026-01-01T00:00:00Z,\n"
                    "ACC-X,x,203.0.113.8/29,2026-02-15T00:00:00Z,\n")
    result = runner.invoke(subscribers_import, [str(path)])
    assert result.exit_code != 0
    assert "overlaps one already stored for the same prefix" in result.output
    with directory.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ispflow.ip_assignments")).scalar() == len(DIRECTORY)


def test_overlapping_rows_within_one_import_name_both_holders(db_engine):
    rows = [Assignment.parse("ACC-A", "a", "192.0.2.0/30", "2026-01-01T00:00:00Z"),
            Assignment.parse("ACC-B", "b", "192.0.2.0/30", "2026-02-01T00:00:00Z")]
    with Session(db_engine) as session, pytest.raises(OverlapError, match="ACC-A .* with no end overlaps ACC-B"):
        save_assignments(session, rows)


def test_one_import_may_close_a_period_and_open_the_next_in_any_order(directory):
    rows = [Assignment.parse("ACC-NEWER", "fiber", "203.0.113.20", "2026-04-01T00:00:00Z"),
            Assignment.parse("ACC-NEW", "fiber", "203.0.113.20", "2026-02-10T12:00:00Z", "2026-04-01T00:00:00Z")]
    with Session(directory) as session:
        assert save_assignments(session, rows) == 2
        session.commit()


@pytest.fixture
def database_at_0001(owner_database_url):
    import secrets

    from ispflow.database import drop_database, upgrade

    url = owner_database_url.rsplit("/", 1)[0] + f"/ispflow_0001_{secrets.token_hex(3)}"
    upgrade(url, "0001")
    yield url
    drop_database(url)


def test_the_migration_rewrites_stored_overlaps_so_the_later_start_wins(database_at_0001):
    from ispflow.database import engine_for, upgrade

    engine = engine_for(database_at_0001)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into ispflow.ip_assignments (account, service, prefix, valid_from, valid_to) values "
            "('ACC-LONG', 's', '192.0.2.0/30', '2026-01-01Z', '2026-01-10Z'),"
            "('ACC-SHORT', 's', '192.0.2.0/30', '2026-01-03Z', '2026-01-05Z'),"
            "('ACC-OPEN', 's', '192.0.2.8/30', '2026-01-01Z', null),"
            "('ACC-NEXT', 's', '192.0.2.8/30', '2026-02-01Z', null),"
            "('ACC-ALONE', 's', '192.0.2.16/30', '2026-01-01Z', null)"))
    upgrade(database_at_0001)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select account, text(prefix), valid_from, valid_to from ispflow.ip_assignments order by prefix, valid_from"
        )).all()
    day = lambda d: datetime(2026, *d, tzinfo=timezone.utc)  # noqa: E731
    assert [tuple(row) for row in rows] == [
        ("ACC-LONG", "192.0.2.0/30", day((1, 1)), day((1, 3))),
        ("ACC-SHORT", "192.0.2.0/30", day((1, 3)), day((1, 5))),
        ("ACC-LONG", "192.0.2.0/30", day((1, 5)), day((1, 10))),
        ("ACC-OPEN", "192.0.2.8/30", day((1, 1)), day((2, 1))),
        ("ACC-NEXT", "192.0.2.8/30", day((2, 1)), None),
        ("ACC-ALONE", "192.0.2.16/30", day((1, 1)), None),
    ]


@pytest.mark.parametrize("account, expected", [
    ("ACC-POOL", ["203.0.113.100@2026-02-15", "203.0.113.10@2026-03-05"]),
    ("ACC-BIZ", ["203.0.113.10@2026-02-05", "203.0.113.10@2026-02-20"]),
    ("ACC-HOST", ["203.0.113.10@2026-02-15"]),
])
def test_an_account_search_finds_the_flows_the_rule_gives_the_account(directory, account, expected):
    from ispflow.search.criteria import parse_criteria
    from ispflow.search.query import all_rows
    from tests.sample_flows import flow, insert_flows

    with directory.connect() as conn:
        insert_flows(conn, [flow(moment, address, "198.51.100.1") for address, moment, _ in CASES[:5]])
        conn.commit()
        criteria = parse_criteria({"from": "2026-01-01", "to": "2026-04-30", "case_ref": "CASE-9", "account": account},
                                  zone=timezone.utc, retention_months=24)
        rows = all_rows(conn, criteria)
    assert sorted(f"{row.src_addr}@{row.ts_start.date()}" for row in rows) == expected


def test_the_subscribers_page_refuses_an_overlapping_import_and_says_why(directory, auth, client):
    import io

    auth.login("admin")
    page = client.get("/netflow/subscribers")
    csv_text = "account,service,prefix,valid_from,valid_to\nACC-X,x,203.0.113.8/29,2026-02-15T00:00:00Z,\n"
    response = client.post("/netflow/subscribers", data={
        "csrf_token": csrf_token(page), "file": (io.BytesIO(csv_text.encode()), "overlap.csv")},
        content_type="multipart/form-data")
    assert "overlaps one already stored for the same prefix" in response.data.decode()
    assert "nothing was imported" in response.data.decode()
    with directory.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ispflow.ip_assignments")).scalar() == len(DIRECTORY)
