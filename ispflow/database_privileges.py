"""Two database roles: the owner of ispflow's schema, and the role everything else connects as.

Flows, NAT events and the audit log are evidence. The panel, the collector and the worker face
the network, so they connect as the *app role* (``ISPFLOW_DATABASE_URL``), which may add to the
evidence and read it but not change, delete or truncate it, and which owns nothing, so it can
neither drop a table nor disable the audit log's triggers (``session_replication_role`` needs a
superuser). Migrations and retention, the only code that destroys evidence (``drop_chunks``
needs the hypertable's owner), run as the *owner* (``ISPFLOW_OWNER_DATABASE_URL``).

``grant_app_role`` runs after every schema upgrade, so tables added by later migrations get the
app role's privileges by their kind: evidence tables append-only, the rest read and write.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .config import DEFAULT_OWNER, default_owner_url  # noqa: F401  (part of this module's interface)
from .database import SCHEMA, DatabaseError, engine_for

# The app role may only insert into and read these; nobody but the owner changes them. A flow
# names its subscriber through holders, so they are evidence too.
EVIDENCE_TABLES = frozenset({"flows", "holders", "nat_events", "audit_log"})
READ_ONLY_TABLES = frozenset({"alembic_version", "audit_chain", "ordered_chunks", "flow_records"})


def role_of(url: str) -> str:
    return make_url(url).username or ""


def table_privileges(table: str) -> str:
    """What the app role may do with ``ispflow.<table>``."""
    if table in EVIDENCE_TABLES:
        return "select, insert"
    if table in READ_ONLY_TABLES:
        return "select"
    return "select, insert, update, delete"


def grant_app_role(owner_url: str, app_url: str) -> str | None:
    """Create the app role if missing and give it exactly its privileges; idempotent.

    Returns a warning sentence when the app and the owner are one role (nothing is protected).
    """
    app = make_url(app_url)
    if not app.username:
        raise DatabaseError("ISPFLOW_DATABASE_URL must name a user (postgresql://USER@HOST/DB).")
    if app.username == role_of(owner_url):
        return (f"ISPFLOW_DATABASE_URL connects as {app.username}, the schema's owner: the audit log and the "
                "flows are not protected from the panel; give it a role of its own (see README).")
    with engine_for(owner_url).begin() as conn:
        _ensure_login_role(conn, app.username, app.password)
        owned = conn.execute(sa.text("select count(*) from pg_tables where schemaname = :schema and tableowner = :role"),
                             {"schema": SCHEMA, "role": app.username}).scalar()
        if owned:
            raise DatabaseError(f"Role {app.username} owns {owned} of ispflow's tables: make the owner role "
                                f"(ISPFLOW_OWNER_DATABASE_URL) their owner with 'reassign owned', then upgrade again.")
        _grant(conn, app.username)
    return None


def _ensure_login_role(conn, name: str, password: str | None) -> None:
    role = conn.execute(sa.text("select rolsuper from pg_roles where rolname = :name"), {"name": name}).first()
    if role is None:
        _format_and_run(conn, "create role %I login", name)
    elif role.rolsuper:
        raise DatabaseError(f"ISPFLOW_DATABASE_URL connects as {name}, a superuser, who can change any evidence; "
                            "use a role of its own (ispflow creates it) and give the superuser to "
                            "ISPFLOW_OWNER_DATABASE_URL.")
    if password:
        _format_and_run(conn, "alter role %I login password %L", name, password)


def _grant(conn, role: str) -> None:
    _format_and_run(conn, "grant connect on database %I to %I",
                    conn.execute(sa.text("select current_database()")).scalar(), role)
    _format_and_run(conn, "grant usage on schema %I to %I", SCHEMA, role)
    # Reading settings only: the start-up check looks for TimescaleDB in shared_preload_libraries.
    _format_and_run(conn, "grant pg_read_all_settings to %I", role)
    _format_and_run(conn, "revoke create on schema %I from %I", SCHEMA, role)
    tables = conn.execute(sa.text("select tablename from pg_tables where schemaname = :schema "
                                  "union select viewname from pg_views where schemaname = :schema"),
                          {"schema": SCHEMA}).scalars().all()
    for table in tables:
        _format_and_run(conn, "revoke all on %I.%I from %I", SCHEMA, table, role)
        _format_and_run(conn, f"grant {table_privileges(table)} on %I.%I to %I", SCHEMA, table, role)
    sequences = conn.execute(sa.text("select sequencename from pg_sequences where schemaname = :schema"),
                             {"schema": SCHEMA}).scalars().all()
    for sequence in sequences:  # usage allows nextval, not setval
        _format_and_run(conn, "revoke all on sequence %I.%I from %I", SCHEMA, sequence, role)
        _format_and_run(conn, "grant usage, select on sequence %I.%I to %I", SCHEMA, sequence, role)


def _format_and_run(conn, template: str, *values: str) -> None:
    """DDL cannot take bound parameters: PostgreSQL's format() quotes the names and literals."""
    placeholders = ", ".join(f":v{i}" for i in range(len(values)))
    statement = conn.execute(sa.text(f"select format(:template, {placeholders})"),
                             {"template": template, **{f"v{i}": v for i, v in enumerate(values)}}).scalar()
    conn.execute(sa.text(statement.replace(":", r"\:")))
