"""ispflow's settings: every ``ISPFLOW_*`` key with its type, default and meaning.

One place defines every key. The environment fills ``app.config`` with ``setdefault`` (so a
host's own values win); from then on the app is the one source: pages, commands, the worker
and the collector take ``Settings`` from the app they run in (``ispflow.app_state.settings``),
and the core receives that ``Settings`` object as an argument — it needs no Flask.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields


class ConfigError(Exception):
    """A setting is missing or malformed; the message says what to do."""


def _str(value: str) -> str:
    return value


def _int(value: str) -> int:
    return int(value)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected yes/no, got {value!r}")


def _list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())


def _smtp_security(value: str) -> str:
    lowered = value.strip().lower()
    if lowered not in {"none", "starttls", "tls"}:
        raise ValueError(f"expected none, starttls or tls, got {value!r}")
    return lowered


def setting(default, parse=_str, doc="", secret=False):
    """A setting; a ``secret`` one is left out of the repr (logs, tracebacks, debug pages)."""
    return field(default=default, repr=not secret, metadata={"parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    DATABASE_URL: str = setting(
        "postgresql://ispflow@127.0.0.1:5432/ispflow",
        doc="PostgreSQL with the TimescaleDB extension, as the role the panel, collector and worker use: it may "
            "add and read flows, NAT events and audit entries, never change or delete them ('ispflow db upgrade' "
            "creates it).",
    )
    OWNER_DATABASE_URL: str = setting(
        "",
        doc="The same database as the role that owns ispflow's schema: migrations and retention (which destroys "
            "evidence when due) run with it. Empty: DATABASE_URL's server and database as user postgres.",
    )
    REDIS_URL: str = setting("redis://127.0.0.1:6379/0", doc="Redis for the rq job queues.")
    SECRET_KEY: str = setting(
        "", doc="The secret every key is derived from: sessions, CSRF, router credentials (required in production).",
        secret=True,
    )
    ENCRYPTION_KEY: str = setting(
        "", doc="Fernet key that encrypts router credentials at rest; derived from SECRET_KEY when empty.",
        secret=True,
    )
    ENCRYPTION_KEY_PREVIOUS: tuple[str, ...] = setting(
        (), _list, "Former credential keys (comma-separated), still read until `ispflow keys rotate` has run.",
        secret=True,
    )
    AUDIT_KEY: str = setting(
        "", doc="Key of the audit log's HMAC chain, kept out of the database; derived from SECRET_KEY when empty.",
        secret=True,
    )
    URL_PREFIX: str = setting("/netflow", doc="Where the blueprint is mounted in the host panel.")
    BASE_TEMPLATE: str = setting(
        "ispflow/layout.html", doc="Template every ispflow page extends; must define blocks 'title' and 'content'."
    )
    LOGIN_URL: str = setting("", doc="Where anonymous users are sent; empty means HTTP 401.")
    QUEUE_NAME: str = setting("ispflow", doc="rq queue for ispflow's jobs.")
    COLLECTOR_LISTEN: tuple[str, ...] = setting(("0.0.0.0:2055",), _list, "UDP addresses the collector binds.")
    COLLECTOR_METRICS_LISTEN: str = setting(
        "", doc="HOST:PORT where the collector serves Prometheus metrics (/metrics); empty: none."
    )
    METRICS_TOKEN: str = setting(
        "", doc="Bearer token Prometheus sends to the panel's /metrics; empty: staff sessions only."
    )
    EXPORT_TARGET: str = setting(
        "", doc="HOST:PORT routers are told to export NetFlow to (module settings may override it)."
    )
    EXPORT_DIR: str = setting("/var/lib/ispflow/exports", doc="Where finished CSV exports are kept for download.")
    SPOOL_DIR: str = setting("/var/spool/ispflow", doc="Where the collector keeps batches while the database is down.")
    SPOOL_MAX_BYTES: int = setting(1 << 30, _int, "Upper bound of the spool directory.")
    STATE_DIR: str = setting(
        "/var/lib/ispflow", doc="Collector state kept across restarts (templates) and the audit log's checkpoints."
    )
    COLLECTOR_ROLLUPS: bool = setting(
        True, _bool, "The collector adds what it stores to the analytics' roll-ups from memory; off, the roll-up "
        "job computes them from the stored flows (docs/storage.md)."
    )
    CHUNK_ORDER: bool = setting(
        True, _bool, "Rewrite each closed day of flows in subscriber order (the hourly chunk-order job; it locks the "
        "day while it runs: docs/storage.md)."
    )
    DEBUG: bool = setting(False, _bool, "Flask debug mode for the standalone panel.")
    GEOIP_COUNTRY_DB: str = setting(
        "", doc="MMDB file with countries (MaxMind GeoLite2/GeoIP2 Country or City, DB-IP, IPinfo); "
        "empty: no countries shown. Reopened when the file changes."
    )
    GEOIP_ASN_DB: str = setting(
        "", doc="MMDB file with AS numbers and names (GeoLite2 ASN, DB-IP ASN, IPinfo); may be the country file."
    )
    SMTP_HOST: str = setting("", doc="Mail server for alert e-mails; empty: alerts are not e-mailed.")
    SMTP_PORT: int = setting(25, _int, "Port of the mail server (587 with STARTTLS, 465 for TLS).")
    SMTP_FROM: str = setting("ispflow@localhost", doc="Sender address of alert e-mails.")
    SMTP_USER: str = setting("", doc="Login at the mail server; empty: no login.")
    SMTP_PASSWORD: str = setting("", doc="Password at the mail server.", secret=True)
    SMTP_SECURITY: str = setting("none", _smtp_security, "none, starttls or tls (SMTPS).")

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get("ISPFLOW_" + f.name)
            if raw is None:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(f"ISPFLOW_{f.name} is not valid ({exc}); fix it in the environment.") from None
        values.update(overrides)
        return cls(**values)

    @property
    def owner_database_url(self) -> str:
        """OWNER_DATABASE_URL, or DATABASE_URL's server and database as user postgres."""
        if self.OWNER_DATABASE_URL:
            return self.OWNER_DATABASE_URL
        return default_owner_url(self.DATABASE_URL)

    @classmethod
    def from_flask(cls, config) -> "Settings":
        """The settings of a Flask app, whose ``ISPFLOW_*`` keys were filled by ``init_app``.

        A host may give any value as text, as the environment does: it is parsed the same way.
        """
        values = {}
        for f in fields(cls):
            value, parse = config["ISPFLOW_" + f.name], f.metadata["parse"]
            if isinstance(value, str) and parse is not _str:
                try:
                    value = parse(value)
                except ValueError as exc:
                    raise ConfigError(f"ISPFLOW_{f.name} is not valid ({exc}); fix it in the app's configuration.") from None
            elif parse is _list and isinstance(value, list):
                value = tuple(value)
            values[f.name] = value
        return cls(**values)

    def as_flask_config(self) -> dict:
        return {"ISPFLOW_" + f.name: getattr(self, f.name) for f in fields(self)}


DEFAULT_OWNER = "postgres"


def default_owner_url(app_url: str) -> str:
    """The owner's URL when none is set: the app's server and database, as user postgres."""
    from sqlalchemy.engine import make_url

    return make_url(app_url).set(username=DEFAULT_OWNER, password=None).render_as_string(hide_password=False)


def configured_names(config, environ=None) -> frozenset[str]:
    """The settings given explicitly, as ``ISPFLOW_*`` keys of ``config`` or of the environment."""
    environ = os.environ if environ is None else environ
    return frozenset(f.name for f in fields(Settings)
                     if "ISPFLOW_" + f.name in config or "ISPFLOW_" + f.name in environ)


def documented_settings():
    """(environment variable, default, description) for every setting; the README's table lists each."""
    return [("ISPFLOW_" + f.name, f.default, f.metadata["doc"]) for f in fields(Settings)]
