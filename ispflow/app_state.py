"""What ispflow keeps on a Flask app (``app.extensions["ispflow"]``), and how pages and commands reach it.

Pages and commands never open a database of their own: they use the extension's database
(the host's Flask-SQLAlchemy when it passed ``db=``), and the settings they hand to the core
name that same database.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy

from .config import ConfigError, Settings

if TYPE_CHECKING:
    from .extension import ISPFlow


@dataclass
class AppState:
    app: Flask
    extension: "ISPFlow"
    configured: Settings  # as app.config says
    db: SQLAlchemy
    given: frozenset[str] = frozenset()  # settings the host or the environment set, rather than defaults
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The configured settings, with DATABASE_URL the URL of the database ``db`` talks to.

        With ``ISPFlow(app, db=host_db)`` that is the host's database, whatever
        ISPFLOW_DATABASE_URL says; jobs and the core then use the pages' database.
        """
        if self._settings is None:  # the engine exists only once the app (and its db) is set up
            with self.app.app_context():
                url = self.db.engine.url
            if url.get_backend_name() == "postgresql":
                url = url.set(drivername="postgresql")
            self._settings = replace(self.configured, DATABASE_URL=url.render_as_string(hide_password=False))
        return self._settings


def state(app: Flask | None = None) -> AppState:
    app = app or current_app
    try:
        return app.extensions["ispflow"]
    except KeyError:
        raise ConfigError(f"ispflow is not initialised on the app {app.name!r}: call ISPFlow().init_app(app).") from None


def session():
    """The SQLAlchemy session of the current request (the host's when it shares its db)."""
    return state().db.session


def engine():
    """The engine of the extension's database, for pages that work with Core connections."""
    return state().db.engine


def is_given(name: str) -> bool:
    """Whether setting ``name`` was set by the app's config or the environment (not a default)."""
    return name in state().given


def settings() -> Settings:
    """The current app's ispflow settings, naming the extension's database."""
    return state().settings
