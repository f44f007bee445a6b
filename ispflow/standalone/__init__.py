"""The standalone host: a minimal panel with its own users, for ISPs without a Flask panel."""
from __future__ import annotations

import secrets

from flask import Flask, redirect, url_for

from ..config import ConfigError, Settings
from ..database import package_path
from ..extension import ISPFlow, db
from .users import User

ispflow = ISPFlow()


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, template_folder=str(package_path("ispflow.templates")))
    app.config["ISPFLOW_BASE_TEMPLATE"] = "standalone/layout.html"
    app.config.update(test_config or {})  # the rest comes from the environment, in init_app
    app.config["SECRET_KEY"] = _secret_key(app, Settings.from_env())
    app.config.setdefault("ISPFLOW_LOGIN_URL", "/login")
    if not app.config["ISPFLOW_LOGIN_URL"]:
        app.config["ISPFLOW_LOGIN_URL"] = "/login"
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    ispflow.init_app(app)

    from . import views

    app.register_blueprint(views.blueprint)

    @app.get("/")
    def home():
        return redirect(url_for("ispflow.index"))

    @app.context_processor
    def logout_token():
        from ..web.forms import CSRFForm

        return {"logout_csrf_token": lambda: CSRFForm().csrf_token.current_token}

    return app


@ispflow.user_loader
def _logged_in_user():
    from flask import session

    user_id = session.get("user_id")
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.must_change_password:
        return None
    return user.as_current_user()


def _secret_key(app: Flask, environment: Settings) -> str:
    key = app.config.get("SECRET_KEY") or app.config.get("ISPFLOW_SECRET_KEY") or environment.SECRET_KEY
    if key:
        return key
    if app.config.get("TESTING") or app.config.get("ISPFLOW_DEBUG", environment.DEBUG):
        return secrets.token_hex(32)
    raise ConfigError("Set ISPFLOW_SECRET_KEY to a long random string (the run script generates one).")
