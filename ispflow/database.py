"""Connections to PostgreSQL + TimescaleDB, schema upgrades and start-up checks.

Everything here works without Flask: the collector, the rq jobs and the CLI use the same
functions as the panel.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, registry

from .config import ConfigError

SCHEMA = "ispflow"


class Base(DeclarativeBase):
    """Declarative base of every ispflow table; all of them live in schema ``ispflow``."""

    # Every string column is PostgreSQL text.
    registry = registry(metadata=sa.MetaData(schema=SCHEMA), type_annotation_map={str: sa.Text})


class DatabaseError(ConfigError):
    """The database cannot be used as configured; the message says what to do."""


def package_path(package: str) -> Path:
    """The folder of a data package (templates, migrations), editable install or not."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed with ispflow")
    return Path(list(spec.submodule_search_locations)[0])


def without_jit(conn) -> None:
    """Turn JIT compilation off for the rest of the transaction (``conn``: a SQLAlchemy
    connection or a psycopg2 cursor).

    PostgreSQL compiles a plan once its estimated cost passes ``jit_above_cost``, and a plan over
    a hypertable's daily chunks has the same expressions once per chunk: for a heavy subscriber's
    half year (180 chunks), compiling 1,082 functions took 1.04 s for a query that ran in 29 ms.
    Searches, exports and the analytics' aggregates run without it."""
    if hasattr(conn, "exec_driver_sql"):
        conn.exec_driver_sql("set local jit = off")
    else:
        conn.execute("set local jit = off")


@lru_cache(maxsize=None)
def engine_for(url: str) -> sa.Engine:
    """One pooled engine per database URL for the whole process."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise DatabaseError(
            f"ISPFLOW_DATABASE_URL {url!r} is not a database URL; use postgresql://USER@HOST:PORT/DBNAME."
        ) from None
    if not parsed.drivername.startswith("postgresql"):
        raise DatabaseError(f"ISPFLOW_DATABASE_URL must point to PostgreSQL, not {parsed.drivername}.")
    return sa.create_engine(parsed.set(drivername="postgresql+psycopg2"), pool_pre_ping=True, future=True)


def raw_connection(url: str):
    """A plain psycopg2 connection, for COPY and server-side cursors on hot paths."""
    import psycopg2

    try:
        return psycopg2.connect(psycopg2_dsn(url))
    except psycopg2.OperationalError as exc:
        raise DatabaseError(_unreachable(url, exc)) from None


def psycopg2_dsn(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _unreachable(url: str, exc: Exception) -> str:
    shown = make_url(url).render_as_string(hide_password=True)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"Cannot connect to the database at {shown} ({first_line}). "
        "Start PostgreSQL (scripts/install-services.sh does it) or set ISPFLOW_DATABASE_URL."
    )


def check_database(url: str) -> str:
    """Fail with one clear sentence unless the database is reachable and has TimescaleDB.

    Returns the TimescaleDB licence edition (``apache`` or ``timescale``).
    """
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            available = conn.execute(
                sa.text("select 1 from pg_available_extensions where name = 'timescaledb'")
            ).scalar()
            if not available:
                raise DatabaseError(
                    "The TimescaleDB extension is not installed in this PostgreSQL server; "
                    "run scripts/install-services.sh or install Timescale's packages (see README)."
                )
            preloaded = conn.execute(sa.text("show shared_preload_libraries")).scalar() or ""
            if "timescaledb" not in preloaded:
                raise DatabaseError(
                    "TimescaleDB is installed but not loaded: add 'timescaledb' to "
                    "shared_preload_libraries in postgresql.conf and restart PostgreSQL."
                )
            return timescale_edition(conn) or "apache"
    except sa.exc.OperationalError as exc:
        raise DatabaseError(_unreachable(url, exc.orig or exc)) from None


def timescale_edition(conn) -> str | None:
    """``apache`` or ``timescale`` (licensed features), None where the extension is not created."""
    return conn.execute(sa.text("select current_setting('timescaledb.license', true)")).scalar()


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(package_path("ispflow.migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", app_url: str | None = None) -> str | None:
    """Create or upgrade ispflow's schema as its owner (``url``); idempotent.

    With ``app_url``, also creates the role it names and grants it the app's privileges
    (``database_privileges``); returns a warning when that role is the owner itself.
    """
    from alembic import command

    create_database_if_missing(url)
    check_database(url)
    command.upgrade(alembic_config(url), revision)
    if app_url is None:
        return None
    from .database_privileges import grant_app_role

    return grant_app_role(url, app_url)


def current_revision(url: str) -> str | None:
    with engine_for(url).connect() as conn:
        exists = conn.execute(sa.text("select to_regclass('ispflow.alembic_version')")).scalar()
        if not exists:
            return None
        return conn.execute(sa.text("select version_num from ispflow.alembic_version")).scalar()


def create_database_if_missing(url: str) -> bool:
    """Create the configured database on first run (connecting to 'postgres' to do it)."""
    parsed = make_url(url)
    admin = sa.create_engine(
        parsed.set(database="postgres", drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("select 1 from pg_database where datname = :name"), {"name": parsed.database}
            ).scalar()
            if exists:
                return False
            conn.execute(sa.text(f'create database "{_identifier(parsed.database)}"'))
            return True
    except sa.exc.OperationalError as exc:
        raise DatabaseError(_unreachable(url, exc.orig or exc)) from None


def drop_database(url: str) -> None:
    parsed = make_url(url)
    engine_for(url).dispose()
    engine_for.cache_clear()
    admin = sa.create_engine(
        parsed.set(database="postgres", drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop database if exists "{_identifier(parsed.database)}" with (force)'))
    admin.dispose()


def _identifier(name: str) -> str:
    if not name or not name.replace("_", "").isalnum():
        raise DatabaseError(f"Database name {name!r} must be letters, digits and underscores.")
    return name
