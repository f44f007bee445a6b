"""Alembic environment: ispflow's tables and version table live in schema ``ispflow`` so the
module can share a host panel's database without touching its tables or its migrations."""
import sqlalchemy as sa
from alembic import context

from ispflow.database import SCHEMA, engine_for

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        with engine_for(config.get_main_option("sqlalchemy.url")).connect() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:
    connection.execute(sa.text(f"create schema if not exists {SCHEMA}"))
    connection.commit()
    context.configure(
        connection=connection,
        version_table="alembic_version",
        version_table_schema=SCHEMA,
        include_schemas=False,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("ispflow migrations run online only: use 'ispflow db upgrade'.")
run_migrations_online()
