"""The tables defined in ispflow/tables.py (and the ORM classes) are exactly what the migrations build."""
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ispflow import tables
from ispflow.collector import writer
from ispflow.database import SCHEMA


def _only_ispflow_tables(obj, name, type_, reflected, compare_to):
    # Alembic's own version table is not part of the definitions. TimescaleDB keeps each
    # hypertable's chunks (with copies of its indexes) in its own schemas, which are not
    # compared, so no index needs to be skipped on the hypertables themselves.
    if type_ == "table" and name == "alembic_version":
        return False
    return True


def _differences(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": True,
            "include_name": lambda name, type_, parent: type_ != "schema" or name == SCHEMA,
            "include_object": _only_ispflow_tables,
            "compare_type": True,
            "compare_server_default": False,
        })
        return compare_metadata(context, tables.metadata())


def test_migrated_database_matches_the_table_definitions(db_engine):
    assert _differences(db_engine) == []


def test_the_comparison_notices_a_column_the_definitions_lack(owner_engine):
    with owner_engine.begin() as conn:
        conn.execute(sa.text("alter table ispflow.settings add column stray integer"))
    try:
        differences = _differences(owner_engine)
    finally:
        with owner_engine.begin() as conn:
            conn.execute(sa.text("alter table ispflow.settings drop column stray"))
    assert [(d[0], d[2], d[3].name) for d in differences] == [("remove_column", "settings", "stray")]


def test_the_collector_copies_every_flow_column_in_table_order():
    assert writer.COLUMNS == tables.names(tables.flows)


def test_every_flow_column_the_export_names_exists():
    import re

    from ispflow.search.export import COLUMNS

    named = {name for _, expression in COLUMNS for name in re.findall(r"\bf\.(\w+)", expression)}
    assert named and named <= set(tables.names(tables.flow_records))
