"""pytest fixtures for ispflow and for host panels that mount it (a pytest plugin).

Each test session gets its own freshly created database, upgraded by the real migrations,
and dropped at the end; tests share it and start from empty tables. Tests connect as the app
role (``database_url``, ``db_engine``), as the panel, collector and worker do, so its limits
are exercised everywhere; ``owner_database_url`` and ``owner_engine`` are the schema's owner, for
retention, schema changes and tests that play an attacker with database access.
"""
from __future__ import annotations

import os
import re
import secrets

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .database import drop_database, engine_for, upgrade

# Emptied between tests: every table the migrations made in schema ispflow (the definitions in
# ispflow/tables.py match them, tests/test_schema.py checks), the audit log too (with its
# append-only guard bypassed).
_TABLES_SQL = "select tablename from pg_tables where schemaname = 'ispflow' and tablename <> 'alembic_version'"


def _server_url() -> str:
    return os.environ.get("ISPFLOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session", autouse=True)
def audit_key():
    """The audit chain's key for the session, in the environment so subprocesses share it."""
    with pytest.MonkeyPatch.context() as patch:
        key = os.environ.get("ISPFLOW_AUDIT_KEY") or f"test-audit-key-{secrets.token_hex(8)}"
        patch.setenv("ISPFLOW_AUDIT_KEY", key)
        yield key


@pytest.fixture(scope="session")
def owner_database_url():
    """URL of a new database with ispflow's schema, as its owner; dropped after the session.

    Its app role (``database_url``) is created with it and dropped with it.
    """
    name = f"ispflow_test_{secrets.token_hex(4)}"
    url = re.sub(r"/[^/]*$", "/" + name, _server_url())
    app_url = make_url(url).set(username=f"{name}_app", password=None).render_as_string(hide_password=False)
    upgrade(url, app_url=app_url)
    yield url
    engine_for(app_url).dispose()
    drop_database(url)
    admin = sa.create_engine(make_url(url).set(database="postgres", drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop role if exists "{name}_app"'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(owner_database_url):
    """URL of the session's database as the app role, the one the panel, collector and worker use:
    it may add flows, NAT events and audit entries and read them, never change or delete them."""
    name = make_url(owner_database_url).database
    return make_url(owner_database_url).set(username=f"{name}_app", password=None).render_as_string(
        hide_password=False)


@pytest.fixture(scope="session")
def redis_url():
    """A Redis database number of its own, emptied before each use."""
    return os.environ.get("ISPFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def redis_conn(redis_url):
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def db_engine(database_url, owner_database_url):
    """The engine of the test database as the app role, with every ispflow table empty."""
    with engine_for(owner_database_url).begin() as conn:
        conn.execute(sa.text("set local session_replication_role = replica"))
        tables = conn.execute(sa.text(_TABLES_SQL)).scalars()
        conn.execute(sa.text("truncate " + ", ".join(f'ispflow."{t}"' for t in tables) + " restart identity cascade"))
    return engine_for(database_url)


@pytest.fixture
def owner_engine(db_engine, owner_database_url):
    """The engine of the test database as its owner (a superuser here): for tests that play the
    attacker with database access, or that check what only the owner may do."""
    return engine_for(owner_database_url)


@pytest.fixture
def app(db_engine, database_url, owner_database_url, redis_url, redis_conn, tmp_path):
    """The standalone panel on the test database, with an empty Redis (no login throttles left over)."""
    from .standalone import create_app

    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "ISPFLOW_DATABASE_URL": database_url,
            "ISPFLOW_OWNER_DATABASE_URL": owner_database_url,
            "SQLALCHEMY_DATABASE_URI": database_url.replace("postgresql://", "postgresql+psycopg2://", 1),
            "ISPFLOW_REDIS_URL": redis_url,
            "ISPFLOW_SPOOL_DIR": str(tmp_path / "spool"),
            "ISPFLOW_STATE_DIR": str(tmp_path / "state"),
            "ISPFLOW_EXPORT_DIR": str(tmp_path / "exports"),
        }
    )
    yield app
    with app.app_context():
        from .extension import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_token(response) -> str:
    """The CSRF token of the (first) form in an HTML response."""
    match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', response.data)
    if not match:
        raise AssertionError("the page has no CSRF token")
    return match.group(1).decode()


class Auth:
    """Creates standalone users and logs the test client in through the real login form."""

    def __init__(self, app, client):
        self.app, self.client = app, client

    def create(self, role: str, username: str | None = None, account: str | None = None,
               password: str = "correct horse battery") -> str:
        from .extension import db
        from .standalone.users import create_user

        username = username or f"{role}-user"
        if role == "customer" and account is None:
            account = "ACC-1"
        with self.app.app_context():
            create_user(db.session, username, password, role, account)
            db.session.commit()
        return username

    def login(self, role: str, **kwargs):
        username = self.create(role, **kwargs)
        return self.login_existing(username, kwargs.get("password", "correct horse battery"))

    def login_existing(self, username: str, password: str):
        token = csrf_token(self.client.get("/login"))
        return self.client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )


@pytest.fixture
def auth(app, client):
    return Auth(app, client)


class RunningCollector:
    """An in-process collector on 127.0.0.1 (ephemeral port) for tests."""

    def __init__(self, database_url, tmp_path, **options):
        from .collector.server import Collector

        options.setdefault("flush_interval", 0.1)
        options.setdefault("heartbeat_interval", 0.5)
        self.collector = Collector(database_url, ["127.0.0.1:0"], str(tmp_path / "spool"), str(tmp_path / "state"),
                                   **options)

    def __getattr__(self, name):
        return getattr(self.collector, name)

    def start(self, trusted=("127.0.0.1",)):
        """Start it with ``trusted`` senders trusted (tests send from the loopback addresses)."""
        if trusted:
            with engine_for(self.collector.database_url).begin() as conn:
                for address in trusted:
                    conn.execute(sa.text(
                        "insert into ispflow.exporters (address, trusted, trusted_by) values (:a, true, 'test') "
                        "on conflict (address) do update set trusted = true"), {"a": address})
        self.collector.start()

    def wait_for_flows(self, engine, count: int, timeout: float = 15.0):
        """The stored flows once ``count`` are there (or whatever is there after ``timeout``)."""
        import time

        deadline = time.monotonic() + timeout
        query = sa.text(
            "select host(src_addr) sa, host(dst_addr) da, src_port sp, dst_port dp, protocol pr, packets, bytes, "
            "ts_start, ts_end, account, service, direction, status, exporter_id, sampling_rate from ispflow.flow_records")
        while True:
            with engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
            if len(rows) >= count or time.monotonic() > deadline:
                time.sleep(0.3)  # and nothing more arrives
                with engine.connect() as conn:
                    return conn.execute(query).mappings().all()
            time.sleep(0.1)


@pytest.fixture
def collector(database_url, db_engine, tmp_path):
    running = RunningCollector(database_url, tmp_path)
    running.start()
    yield running
    running.stop()
