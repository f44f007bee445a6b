"""A host ISP panel for tests: its own Flask-SQLAlchemy, its own config file, ispflow mounted with ``db=``.

``create_app`` reads the panel's configuration from the JSON file named by ``HOST_PANEL_CONFIG``
(as a real panel reads its own config file), so the test's in-process panel and an
``ispflow --app tests.host_panel:create_app worker`` started beside it are the same panel,
whatever ``ISPFLOW_*`` variables their environments hold. The panel listens to every ispflow
signal and appends what it hears, with the process id, to the file ``signal_log`` names.
"""
from __future__ import annotations

import json
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from ispflow import CurrentUser, ISPFlow
from ispflow import signals


class HostBase(DeclarativeBase):
    """The panel's own models' base, unrelated to ispflow's."""


def create_app() -> Flask:
    with open(os.environ["HOST_PANEL_CONFIG"], encoding="utf-8") as file:
        config = json.load(file)
    app = Flask("host_panel")
    app.config.update(SECRET_KEY="host-panel-secret", SQLALCHEMY_DATABASE_URI=config["database_uri"],
                      **config["ispflow"])
    db = SQLAlchemy(model_class=HostBase)
    db.init_app(app)
    ispflow = ISPFlow(app, db=db)
    app.logged_in = {"user": None}
    ispflow.user_loader(lambda: app.logged_in["user"])
    log_signals_to(config["signal_log"])
    return app


def as_user(app: Flask, name: str, role: str, account: str | None = None) -> None:
    app.logged_in["user"] = CurrentUser(name, role, account=account)


_signal_log: dict[str, str | None] = {"path": None}


def log_signals_to(path: str | None) -> None:
    """Where the panel's receivers write what they hear (None: nowhere)."""
    _signal_log["path"] = path


def _receiver_for(name: str):
    def receive(sender, **kwargs):
        if _signal_log["path"]:
            with open(_signal_log["path"], "a", encoding="utf-8") as log:
                log.write(json.dumps({"signal": name, "pid": os.getpid(), "sender": str(sender),
                                      "keys": sorted(kwargs)}) + "\n")
    return receive


# Connected when the panel's code is imported, as a real panel does; weak=False keeps them alive.
for _name in ("router_provisioned", "export_made", "retention_ran", "collector_down"):
    getattr(signals, _name).connect(_receiver_for(_name), weak=False)
