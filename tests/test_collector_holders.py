"""A flow names its subscriber by a holders.id: one id per (account, service), never lost to a rollback."""
import pytest
import sqlalchemy as sa

from ispflow.collector.holders import Holders
from ispflow.database import raw_connection


@pytest.fixture
def conn(database_url):
    connection = raw_connection(database_url)
    yield connection
    connection.close()


def holders(db_engine):
    with db_engine.connect() as c:
        return {(r.account, r.service): r.id for r in c.execute(sa.text("select * from ispflow.holders"))}


def test_each_pair_gets_one_id_whoever_asks_and_in_whatever_order(conn, db_engine):
    pairs = [("ACC-1", "fibre"), ("ACC-1", "dsl"), ("ACC-2", None), ("Účet-ž", "fibre"), ("ACC-1", "fibre")]
    first = Holders().ids(conn, pairs)
    again = Holders().ids(conn, list(reversed(pairs)))
    stored = holders(db_engine)
    assert len(stored) == 4
    assert first.tolist() == [stored[p] for p in pairs]
    assert again.tolist() == [stored[p] for p in reversed(pairs)]


def test_a_directorys_list_is_looked_up_once(conn, db_engine):
    cache, pairs = Holders(), [("ACC-1", "fibre")]
    assert cache.ids(conn, pairs) is cache.ids(conn, pairs)


def test_new_pairs_are_committed_before_any_flow_refers_to_them(conn, db_engine):
    """The collector's flows transaction may roll back; the ids it was given must stay valid."""
    ids = Holders().ids(conn, [("ACC-9", "fibre")])
    conn.rollback()
    assert holders(db_engine) == {("ACC-9", "fibre"): int(ids[0])}


def test_an_id_taken_by_a_chosen_value_does_not_stop_a_new_pair(conn, db_engine):
    with db_engine.begin() as c:
        sequence = c.execute(sa.text("select pg_get_serial_sequence('ispflow.holders', 'id')")).scalar()
        taken = c.execute(sa.text(f"select case when is_called then last_value + 1 else last_value end "
                                  f"from {sequence}")).scalar()
        c.execute(sa.text("insert into ispflow.holders (id, account, service) overriding system value "
                          "values (:id, 'SQUAT', 'x')"), {"id": taken})
    ids = Holders().ids(conn, [("ACC-NEW", "fibre")])
    assert holders(db_engine)[("ACC-NEW", "fibre")] == int(ids[0]) != taken
