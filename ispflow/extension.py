"""The Flask extension a host ISP panel mounts: ``ispflow = ISPFlow(); ispflow.init_app(app)``.

The host stays in charge of login and of its subscriber records. It tells ispflow who the
current user is through ``@ispflow.user_loader`` and, optionally, hands over its subscriber
directory through ``@ispflow.assignments_loader``; everything else ispflow keeps in its own
schema of the host's (or its own) database.
"""
from __future__ import annotations

from typing import Callable, Iterable

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from .app_state import AppState
from .config import ConfigError, Settings, configured_names
from .database import Base, engine_for
from .roles import CurrentUser
from .web import blueprint

# ispflow's own Flask-SQLAlchemy, used when the host passes none.
db = SQLAlchemy(model_class=Base)


class ISPFlow:
    def __init__(self, app: Flask | None = None, db: SQLAlchemy | None = None):
        self._db = db
        self._user_loader: Callable[[], CurrentUser | None] | None = None
        self._assignments_loader: Callable[[], Iterable] | None = None
        if app is not None:
            self.init_app(app)

    def user_loader(self, callback: Callable[[], CurrentUser | None]):
        """Register the host's "who is logged in" callback; it returns a CurrentUser or None."""
        self._user_loader = callback
        return callback

    def assignments_loader(self, callback: Callable[[], Iterable]):
        """Register the host's subscriber directory: an iterable of ``ispflow.Assignment``.

        ``ispflow subscribers sync`` copies it into ispflow's own table, where the collector
        and the searches read it; run it whenever the host's directory changes (e.g. from cron).
        """
        self._assignments_loader = callback
        return callback

    def init_app(self, app: Flask) -> None:
        given = configured_names(app.config)
        for key, value in Settings.from_env().as_flask_config().items():
            app.config.setdefault(key, value)
        settings = _validated(app.config)
        from . import audit

        audit.configure(settings)
        database = self._db or _own_database(app, settings)
        app.extensions["ispflow"] = AppState(app, self, settings, database, given)
        app.register_blueprint(blueprint, url_prefix=settings.URL_PREFIX.rstrip("/") or None)

    def current_user(self) -> CurrentUser | None:
        if self._user_loader is None:
            raise ConfigError("The host panel must register ispflow.user_loader before serving pages.")
        return self._user_loader()

    def host_assignments(self) -> Iterable | None:
        return None if self._assignments_loader is None else self._assignments_loader()


def _own_database(app: Flask, settings: Settings) -> SQLAlchemy:
    if "sqlalchemy" in app.extensions:
        raise ConfigError(
            "This app already uses Flask-SQLAlchemy: pass it to ispflow as ISPFlow(app, db=db)."
        )
    engine_for(settings.DATABASE_URL)  # validates the URL with a clear message
    app.config.setdefault(
        "SQLALCHEMY_DATABASE_URI", settings.DATABASE_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
    )
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    db.init_app(app)
    return db


def _validated(config) -> Settings:
    settings = Settings.from_flask(config)
    if not settings.URL_PREFIX.startswith("/"):
        raise ConfigError(f"ISPFLOW_URL_PREFIX must start with '/', got {settings.URL_PREFIX!r}.")
    return settings
