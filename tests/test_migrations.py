"""The schema is owned by Alembic migrations in schema 'ispflow' with its own version table."""
import secrets

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from ispflow.database import (
    alembic_config, check_database, current_revision, drop_database, engine_for, upgrade, DatabaseError,
)


def test_migrations_have_a_single_head(database_url):
    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert len(heads) == 1


@pytest.fixture
def empty_database_url(owner_database_url):
    url = owner_database_url.rsplit("/", 1)[0] + f"/ispflow_empty_{secrets.token_hex(3)}"
    yield url
    drop_database(url)


def test_upgrade_creates_the_database_schema_and_hypertables(empty_database_url):
    upgrade(empty_database_url)
    upgrade(empty_database_url)  # idempotent
    with engine_for(empty_database_url).connect() as conn:
        hypertables = set(conn.execute(sa.text(
            "select hypertable_name from timescaledb_information.hypertables where hypertable_schema = 'ispflow'"
        )).scalars())
        version_table = conn.execute(sa.text("select to_regclass('ispflow.alembic_version')")).scalar()
        public_tables = conn.execute(sa.text(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        )).scalar()
    assert {"flows", "nat_events"} <= hypertables
    assert {h for h in hypertables if h not in ("flows", "nat_events")} == {
        "rollup_traffic_5m", "rollup_network_5m", "rollup_interface_5m", "rollup_accounts_1h", "rollup_apps_1h",
        "rollup_talkers_1h", "rollup_account_talkers_1h", "rollup_prefix_5m"}
    assert version_table == "ispflow.alembic_version"
    assert public_tables == 0
    [head] = ScriptDirectory.from_config(alembic_config(empty_database_url)).get_heads()
    assert current_revision(empty_database_url) == head


def test_flows_table_has_the_documented_columns(db_engine):
    documented = {
        "ts_start", "ts_end", "exporter_id", "src_addr", "dst_addr", "src_port", "dst_port", "protocol",
        "tcp_flags", "bytes", "packets", "in_if", "out_if", "sampling_rate", "account", "service",
        "direction", "status",
    }
    with db_engine.connect() as conn:
        columns = set(conn.execute(sa.text(
            "select column_name from information_schema.columns where table_schema='ispflow' and table_name='flow_records'"
        )).scalars())
    assert documented <= columns


def test_timescaledb_edition_is_detected(database_url):
    assert check_database(database_url) in {"apache", "timescale"}


def test_an_unreachable_database_gives_one_sentence_saying_what_to_do():
    with pytest.raises(DatabaseError, match=r"Cannot connect to the database .*Start PostgreSQL"):
        check_database("postgresql://postgres@127.0.0.1:1/nothing")


def test_entries_written_before_the_chain_was_keyed_still_verify_and_are_sealed(empty_database_url):
    from datetime import datetime, timezone

    from ispflow import audit

    upgrade(empty_database_url, revision="0001")
    engine = engine_for(empty_database_url)
    prev = audit.GENESIS
    with engine.begin() as conn:  # two entries as the unkeyed chain wrote them
        for case in ("OLD-1", "OLD-2"):
            at = datetime.now(timezone.utc)
            digest = audit._legacy_digest(prev, at, "olga", "compliance", "search", case, {}, 1, None)
            conn.execute(sa.text("insert into ispflow.audit_log (at, actor, role, action, case_ref, row_count, "
                                 "prev_hash, hash) values (:at, 'olga', 'compliance', 'search', :case, 1, :prev, "
                                 ":hash)"), {"at": at, "case": case, "prev": prev, "hash": digest})
            prev = digest
    upgrade(empty_database_url)
    with engine.begin() as conn:
        audit.record(conn, actor="olga", action="search", case_ref="NEW-1")
    with engine.connect() as conn:
        assert audit.verify(conn).ok
    with engine.begin() as conn:  # re-chaining the old entries without the key breaks the first keyed one
        conn.execute(sa.text("set local session_replication_role = replica"))
        conn.execute(sa.text("delete from ispflow.audit_log where id = 1"))
        first = conn.execute(sa.text("select * from ispflow.audit_log where id = 2")).one()
        rechained = audit._legacy_digest(audit.GENESIS, first.at, first.actor, first.role, first.action,
                                         first.case_ref, {}, first.row_count, None)
        conn.execute(sa.text("update ispflow.audit_log set prev_hash = :g, hash = :h where id = 2"),
                     {"g": audit.GENESIS, "h": rechained})
    with engine.connect() as conn:
        result = audit.verify(conn)
    assert [p.kind for p in result.problems] == ["removed-start", "removed-middle"]
    engine.dispose()


def test_every_chunk_of_flows_summarises_its_time_index_as_it_fills(empty_database_url):
    """An unsummarised BRIN range matches every query: recent hours would be read as a whole chunk."""
    from tests.sample_flows import flow, insert_flows

    upgrade(empty_database_url, revision="analytics_bigint_sums")
    engine = engine_for(empty_database_url)
    with engine.connect() as conn:   # a chunk made before the migration
        insert_flows(conn, [flow("2026-01-10T10:00:00Z")])
        conn.commit()
    upgrade(empty_database_url)
    with engine.connect() as conn:   # and one after it
        insert_flows(conn, [flow("2026-01-20T10:00:00Z")])
        conn.commit()
        options = conn.execute(sa.text(
            "select c.reloptions from pg_inherits i join pg_index x on x.indrelid = i.inhrelid "
            "join pg_class c on c.oid = x.indexrelid join pg_am a on a.oid = c.relam "
            "where i.inhparent = 'ispflow.flows'::regclass and a.amname = 'brin'")).scalars().all()
    engine.dispose()
    assert len(options) == 2
    assert all("autosummarize=on" in o for o in options)


def test_flows_stored_with_names_keep_their_account_service_and_status_as_holder_keys(empty_database_url):
    """Migration perf_holder_key rewrites every stored flow: its account and service become a key
    into holders, its status is derived; a search shows each flow as it showed before, and the
    rows keep their physical order (an ordered day stays ordered)."""
    upgrade(empty_database_url, revision="analytics_raw_talker_hours")
    before = [  # account, service, protocol, tcp_flags, status as the collector stored it
        ("ACC-1", "fibre", 6, 0x1B, "success"), ("ACC-1", "fibre", 6, 0x02, "failure"),
        ("ACC-1", "dsl", 17, None, None), ("ACC-2", "fibre", 6, 0x14, "failure"),
        (None, None, 6, 0x12, "success"), (None, None, 1, None, None),
    ]
    engine = engine_for(empty_database_url)
    stored_order = [3, 0, 5, 1, 4, 2]   # not the order of their times
    with engine.begin() as conn:
        for i in stored_order:
            account, service, protocol, flags, status = before[i]
            conn.execute(sa.text(
                "insert into ispflow.flows (ts_start, ts_end, exporter_id, src_addr, dst_addr, protocol, tcp_flags, "
                "bytes, packets, account, service, direction, status) values (:ts, :ts, 1, '100.64.0.1', "
                "'198.51.100.1', :protocol, :flags, :bytes, 1, :account, :service, 'out', :status)"),
                {"ts": f"2026-01-10T10:00:{i:02d}Z", "protocol": protocol, "flags": flags, "bytes": i,
                 "account": account, "service": service, "status": status})
    upgrade(empty_database_url)
    with engine.connect() as conn:
        after = conn.execute(sa.text("select account, service, protocol, tcp_flags, status "
                                     "from ispflow.flow_records order by bytes")).all()
        holders = conn.execute(sa.text("select account, service from ispflow.holders order by 1, 2")).all()
        columns = set(conn.execute(sa.text("select column_name from information_schema.columns "
                                           "where table_schema = 'ispflow' and table_name = 'flows'")).scalars())
        physical = conn.execute(sa.text("select bytes from ispflow.flow_records order by rid")).scalars().all()
    engine.dispose()
    assert physical == stored_order
    assert [tuple(r) for r in after] == before
    assert [tuple(r) for r in holders] == [("ACC-1", "dsl"), ("ACC-1", "fibre"), ("ACC-2", "fibre")]
    assert {"account", "service", "status"}.isdisjoint(columns) and "holder" in columns
